package main

// span is the rows [y0, y0+rows) of one strip.
type span struct{ y0, rows int }

// strips cuts height rows into strips of rowsPerPart rows, the last one
// shorter when it does not divide. When that makes more than maxParts
// strips (maxParts > 0), the strips grow to ⌈height/maxParts⌉ rows, which
// makes at most maxParts of them. Equal heights keep the parts' costs
// comparable, so one slow strip does not hold up the task.
func strips(height, rowsPerPart, maxParts int) []span {
	rows := max(rowsPerPart, 1)
	if maxParts > 0 && ceilDiv(height, rows) > maxParts {
		rows = ceilDiv(height, maxParts)
	}
	var ss []span
	for y0 := 0; y0 < height; y0 += rows {
		ss = append(ss, span{y0: y0, rows: min(rows, height-y0)})
	}
	return ss
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
