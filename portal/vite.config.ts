import { defineConfig } from 'vite'

// No React plugin: TSX goes through Vite's own transform with the
// automatic JSX runtime. The build lands in dist/app, which the Go binary
// embeds (dist/.keep stays so the embed compiles without a build).
export default defineConfig({
  build: { outDir: 'dist/app', emptyOutDir: true, sourcemap: false, assetsInlineLimit: 0 },
  oxc: { jsx: { runtime: 'automatic' } },
  server: {
    proxy: { '/api': 'http://127.0.0.1:8042', '/dicom-web': 'http://127.0.0.1:8042' },
  },
  test: { environment: 'jsdom', include: ['src/**/*.test.{ts,tsx}'] },
})
