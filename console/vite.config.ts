// The console is served by the gateway at `/`, its hashed assets under `/assets/`.
// The build output (dist/) is git-ignored: `make console` makes it from package-lock.json.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    sourcemap: false,
    // no inline <script> or data: module: the gateway's CSP allows only 'self'
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: "es2022",
  },
});
