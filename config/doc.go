// Package config owns Medimint's runtime configuration: every setting is an
// environment variable with an embedded default, read once at start-up by
// [FromEnv] and validated so that a typo fails loudly instead of silently
// falling back to a default.
//
// The README's configuration table is the user-facing copy of [Vars]; keep
// the two in step.
package config
