import { defineConfig } from 'vite'

// No React plugin needed for a build: esbuild compiles JSX with the automatic runtime.
export default defineConfig({
  esbuild: { jsx: 'automatic' },
})
