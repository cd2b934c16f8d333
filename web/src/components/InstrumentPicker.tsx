import { useId, useState, type FormEvent } from "react";
import { INSTRUMENT_PATTERN } from "../api/types";

/** A text field with the known instruments as suggestions, and an Add button. */
export function InstrumentPicker({
  known,
  exclude = [],
  onAdd,
  label = "Add instrument",
  busy = false,
}: {
  known: readonly string[];
  exclude?: readonly string[];
  onAdd: (instrument: string) => void | Promise<void>;
  label?: string;
  busy?: boolean;
}) {
  const id = useId();
  const [value, setValue] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const options = known.filter((instrument) => !exclude.includes(instrument));

  function add(event: FormEvent) {
    event.preventDefault();
    const instrument = value.trim();
    if (!INSTRUMENT_PATTERN.test(instrument)) {
      setProblem("Write an instrument as venue:SYMBOL, for example binance:BTC-USDT.");
      return;
    }
    if (exclude.includes(instrument)) {
      setProblem(`${instrument} is already in the list.`);
      return;
    }
    setProblem(null);
    setValue("");
    void onAdd(instrument);
  }

  return (
    <form className="inline-form" onSubmit={add}>
      <label htmlFor={`${id}-input`}>{label}</label>
      <input
        id={`${id}-input`}
        list={`${id}-options`}
        value={value}
        placeholder="venue:SYMBOL"
        onChange={(event) => setValue(event.target.value)}
        aria-invalid={problem !== null}
        aria-describedby={problem ? `${id}-problem` : undefined}
      />
      <datalist id={`${id}-options`}>
        {options.map((instrument) => (
          <option key={instrument} value={instrument} />
        ))}
      </datalist>
      <button type="submit" disabled={busy}>
        Add
      </button>
      {problem && (
        <p id={`${id}-problem`} className="error" role="alert">
          {problem}
        </p>
      )}
    </form>
  );
}
