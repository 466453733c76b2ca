package nf4

import (
	"strconv"
	"strings"
)

// pyFloat formats a finite float64 as Python's repr (and so json.dumps) does: the shortest
// digits that read back to the same float64; positional notation when the decimal exponent
// is in [-4, 16), else d.ddde+XX with at least two exponent digits; ".0" after an integral
// positional value. The quant-state JSON then has the bytes bitsandbytes writes.
func pyFloat(f float64) string {
	s := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde±XX, shortest round-trip digits
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	if exp < -4 || exp >= 16 {
		e := strconv.Itoa(abs(exp))
		if len(e) < 2 {
			e = "0" + e
		}
		es := "+"
		if exp < 0 {
			es = "-"
		}
		return sign + mant + "e" + es + e
	}
	if exp < 0 {
		return sign + "0." + strings.Repeat("0", -exp-1) + digits
	}
	if len(digits) <= exp+1 {
		return sign + digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	}
	return sign + digits[:exp+1] + "." + digits[exp+1:]
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
