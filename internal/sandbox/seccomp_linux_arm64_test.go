package sandbox

// archOnlyDenied are the denied calls only arm64 has: none.
func archOnlyDenied() []int { return nil }
