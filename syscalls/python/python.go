// Package python ships pinfold's stdlib-only Python client (pinfold.py in
// this directory) inside the pinfold binary, so that every sandbox can
// import it without pip: the supervisor places it read-only at Path and
// puts Dir on the app's PYTHONPATH (sandbox.FromPolicy).
package python

import _ "embed"

//go:embed pinfold.py
var module []byte

// Where apps find the module.
const (
	Dir  = "/run/pinfold/python"
	Path = Dir + "/pinfold.py"
)

// Module returns the module's source. The slice is shared: do not modify it.
func Module() []byte { return module }
