// Copies the API docs pages' assets (Swagger UI and ReDoc, from their npm packages) into
// dist/docs-assets, where the gateway serves them: /docs and /redoc then need no other host.
import { copyFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const dist = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "docs-assets");

const assets = {
  "swagger-ui": [
    "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui-dist/swagger-ui.css",
  ],
  redoc: ["redoc/bundles/redoc.standalone.js"],
};

for (const [folder, files] of Object.entries(assets)) {
  mkdirSync(join(dist, folder), { recursive: true });
  for (const file of files) {
    const source = require.resolve(file);
    copyFileSync(source, join(dist, folder, file.split("/").pop()));
  }
}
