//go:build !amd64 || purego

package sparse

// asmImpl: no assembly in this build.
func asmImpl() *impl { return nil }
