#!/usr/bin/env node
// The initial JavaScript of the built app, gzipped: the entry script of dist/index.html plus
// every module it preloads, and the static imports they pull in (what a first visit downloads
// before any page chunk). Prints one summary line per file and a total; with --json, a JSON
// object. Exits 1 over the budget (300 KB), 2 when dist/ is missing.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const BUDGET_BYTES = 300 * 1024;
const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, "..", "dist");
const indexPath = join(dist, "index.html");
if (!existsSync(indexPath)) {
  console.error(`no ${indexPath}: run \`npm run build\` first`);
  process.exit(2);
}

const html = readFileSync(indexPath, "utf8");
const attribute = (tag, name) => new RegExp(`${name}="([^"]+)"`).exec(tag)?.[1];
const initial = new Set();
for (const tag of html.match(/<script\b[^>]*>/g) ?? []) {
  const src = attribute(tag, "src");
  if (src && /type="module"/.test(tag)) initial.add(src);
}
for (const tag of html.match(/<link\b[^>]*>/g) ?? []) {
  const href = attribute(tag, "href");
  if (href && /rel="modulepreload"/.test(tag)) initial.add(href);
}

// Static imports are loaded before the entry runs, preloaded or not.
const fileOf = (url) => join(dist, url.replace(/^\//, ""));
const queue = [...initial];
while (queue.length > 0) {
  const url = queue.shift();
  const code = readFileSync(fileOf(url), "utf8");
  for (const match of code.matchAll(/(?:^|[;}\s])import\s*(?:[\w*{}\s,$]+from\s*)?["']([^"']+\.js)["']/g)) {
    const target = new URL(match[1], `http://x${url}`).pathname;
    if (!initial.has(target)) {
      initial.add(target);
      queue.push(target);
    }
  }
}

const rows = [...initial].map((url) => {
  const bytes = readFileSync(fileOf(url));
  return { file: url, bytes: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
});
const total = rows.reduce((sum, row) => sum + row.gzip, 0);
const kb = (n) => (n / 1024).toFixed(1);

if (process.argv.includes("--json")) {
  console.log(JSON.stringify({ files: rows, initial_js_gzip_bytes: total, budget_bytes: BUDGET_BYTES }));
} else {
  for (const row of rows) console.log(`${row.file}  ${kb(row.bytes)} KB  (gzip ${kb(row.gzip)} KB)`);
  console.log(`initial JS gzipped: ${kb(total)} KB (${total} bytes) of ${kb(BUDGET_BYTES)} KB budget`);
}
process.exit(total > BUDGET_BYTES ? 1 : 0);
