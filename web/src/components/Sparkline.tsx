/** A tiny SVG line of recent prices; the numbers beside it say the same in text. */
export function Sparkline({ values, label, width = 120, height = 32 }: { values: readonly number[]; label: string; width?: number; height?: number }) {
  if (values.length < 2) {
    return (
      <svg className="sparkline" width={width} height={height} role="img" aria-label={`${label}: not enough data yet`}>
        <line x1="0" x2={width} y1={height / 2} y2={height / 2} className="sparkline-empty" />
      </svg>
    );
  }
  let min = Infinity;
  let max = -Infinity;
  for (const value of values) {
    if (value < min) min = value;
    if (value > max) max = value;
  }
  const span = max - min || 1;
  const step = width / (values.length - 1);
  const points = values
    .map((value, i) => `${(i * step).toFixed(1)},${(height - 2 - ((value - min) / span) * (height - 4)).toFixed(1)}`)
    .join(" ");
  const first = values[0] as number;
  const last = values[values.length - 1] as number;
  const trend = last > first ? "up" : last < first ? "down" : "flat";
  return (
    <svg className={`sparkline sparkline-${trend}`} width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`${label}, trending ${trend === "flat" ? "flat" : trend}`}>
      <polyline points={points} fill="none" strokeWidth="1.5" />
    </svg>
  );
}
