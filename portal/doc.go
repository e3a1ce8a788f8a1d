// Package portal owns the patients' and clinicians' web front end: a React
// + TypeScript single-page app built with Vite (sources in src/, tests in
// src/*.test.tsx and e2e/), embedded in the binary from dist/app, and the
// handler that serves it with a strict Content Security Policy.
//
// The Go build works without Node: when dist/app was not built, the
// handler answers with a page saying how to build it (npm ci && npm run
// build in portal/).
package portal
