import react from "@vitejs/plugin-react";
import type { ClientRequest } from "node:http";
import { defineConfig } from "vitest/config";

// The gateway the dev server forwards /v1 (REST and the live-feed WebSocket) to.
const api = process.env.FINONE_API_URL ?? "http://127.0.0.1:8000";

// The gateway checks Origin against its allow-list (the WebSocket handshake especially): through
// the proxy the page's origin is the dev server's, so present the gateway's own instead.
function sameOrigin(request: ClientRequest): void {
  request.setHeader("origin", new URL(api).origin);
}

export default defineConfig({
  base: "/",
  plugins: [react()],
  build: {
    outDir: "dist",
    target: "es2022",
    sourcemap: false,
  },
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      "/v1": {
        target: api,
        ws: true,
        changeOrigin: true,
        configure(proxy) {
          proxy.on("proxyReq", sameOrigin);
          proxy.on("proxyReqWs", sameOrigin);
        },
      },
    },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
