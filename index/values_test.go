package index

import "testing"

func TestNormalisePN(t *testing.T) {
	tests := []struct{ in, norm, fam, giv, mid, ideo, phon string }{
		{"Doe^John", "DOE^JOHN", "DOE", "JOHN", "", "", ""},
		{"Doe^John^^^", "DOE^JOHN", "DOE", "JOHN", "", "", ""},
		{" Doe ^ John ^ Q", "DOE^JOHN^Q", "DOE", "JOHN", "Q", "", ""},
		{"=山田^太郎", "山田^太郎", "山田", "太郎", "", "山田^太郎", ""},
		{"Yamada^Tarou=山田^太郎", "YAMADA^TAROU", "YAMADA", "TAROU", "", "山田^太郎", ""},
		{"Yamada^Tarou=山田^太郎^^=やまだ^たろう", "YAMADA^TAROU", "YAMADA", "TAROU", "", "山田^太郎", "やまだ^たろう"},
		{"", "", "", "", "", "", ""},
		{`A^B\C^D`, "A^B", "A", "B", "", "", ""},
	}
	for _, tc := range tests {
		pn := normalisePN(tc.in)
		if pn.norm != tc.norm || pn.family != tc.fam || pn.given != tc.giv || pn.middle != tc.mid || pn.ideo != tc.ideo || pn.phon != tc.phon {
			t.Errorf("normalisePN(%q) = %+v", tc.in, pn)
		}
	}
}

func TestPNQueryNorm(t *testing.T) {
	tests := []struct{ in, want string }{
		{"doe^john^^", "DOE^JOHN"},
		{"山田*", "山田*"},
		{"=山田^太郎", "山田^太郎"},
		{"Yamada^Tarou=山田^太郎", "YAMADA^TAROU"},
		{"==やまだ^たろう", "やまだ^たろう"},
		{"=", ""},
	}
	for _, tc := range tests {
		if got := pnQueryNorm(tc.in); got != tc.want {
			t.Errorf("pnQueryNorm(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in     string
		tm     bool
		lo, hi string
		err    bool
	}{
		{"20200115", false, "2020-01-15", "2020-01-15", false},
		{"202002", false, "2020-02-01", "2020-02-29", false},
		{"2021", false, "2021-01-01", "2021-12-31", false},
		{"20200101-20201231", false, "2020-01-01", "2020-12-31", false},
		{"-2020", false, "", "2020-12-31", false},
		{"2020-", false, "2020-01-01", "", false},
		{"1998.01.02", false, "1998-01-02", "1998-01-02", false},
		{"-", false, "", "", true},
		{"2020131", false, "", "", true},
		{"20201301", false, "", "", true},
		{"10", true, "10:00:00.000000", "10:59:59.999999", false},
		{"1030-1100", true, "10:30:00.000000", "11:00:59.999999", false},
		{"103015.5", true, "10:30:15.500000", "10:30:15.599999", false},
		{"10:30:15", true, "10:30:15.000000", "10:30:15.999999", false},
		{"2500", true, "", "", true},
		{"10.5", true, "", "", true},
	}
	for _, tc := range tests {
		p := parseDA
		if tc.tm {
			p = parseTM
		}
		r, err := parseRange(tc.in, p)
		if (err != nil) != tc.err || r.lo != tc.lo || r.hi != tc.hi {
			t.Errorf("parseRange(%q) = %+v, %v", tc.in, r, err)
		}
	}
}

func TestLikePattern(t *testing.T) {
	tests := []struct{ in, pat, prefix string }{
		{"DOE*", "DOE%", "DOE"},
		{"D?E", "D_E", "D"},
		{"100%*", `100\%%`, "100%"},
		{`a_b\c`, `a\_b\\c`, `a_b\c`},
		{"*x", "%x", ""},
	}
	for _, tc := range tests {
		p, pre := likePattern(tc.in)
		if p != tc.pat || pre != tc.prefix {
			t.Errorf("likePattern(%q) = %q, %q", tc.in, p, pre)
		}
	}
	if prefixUpper("DOE") != "DOF" || prefixUpper("") != "" || prefixUpper("Ü") != "" {
		t.Error("prefixUpper")
	}
}
