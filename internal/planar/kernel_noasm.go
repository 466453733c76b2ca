//go:build !amd64 || purego

package planar

// asmImpl: no assembly in this build.
func asmImpl() *impl { return nil }
