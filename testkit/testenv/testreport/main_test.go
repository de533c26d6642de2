package main

import (
	"bytes"
	"strings"
	"testing"
)

// A go test -json stream (as go 1.26 writes it) of one package with a
// passing, a failing, a skipped test and a skipped subtest.
const stream = `{"Action":"start","Package":"ex/p"}
{"Action":"run","Package":"ex/p","Test":"TestOK"}
{"Action":"output","Package":"ex/p","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"output","Package":"ex/p","Test":"TestOK","Output":"    p_test.go:5: chatter\n"}
{"Action":"output","Package":"ex/p","Test":"TestOK","Output":"--- PASS: TestOK (0.00s)\n"}
{"Action":"pass","Package":"ex/p","Test":"TestOK"}
{"Action":"run","Package":"ex/p","Test":"TestBad"}
{"Action":"output","Package":"ex/p","Test":"TestBad","Output":"=== RUN   TestBad\n"}
{"Action":"output","Package":"ex/p","Test":"TestBad","Output":"    p_test.go:9: got 1, want 2\n"}
{"Action":"output","Package":"ex/p","Test":"TestBad","Output":"--- FAIL: TestBad (0.00s)\n"}
{"Action":"fail","Package":"ex/p","Test":"TestBad"}
{"Action":"run","Package":"ex/p","Test":"TestRoot"}
{"Action":"output","Package":"ex/p","Test":"TestRoot","Output":"=== RUN   TestRoot\n"}
{"Action":"output","Package":"ex/p","Test":"TestRoot","Output":"    p_test.go:12: needs root: makes TUN devices\n"}
{"Action":"output","Package":"ex/p","Test":"TestRoot","Output":"--- SKIP: TestRoot (0.00s)\n"}
{"Action":"skip","Package":"ex/p","Test":"TestRoot"}
{"Action":"output","Package":"ex/p","Test":"TestT/sub","Output":"    p_test.go:20: needs dig\n"}
{"Action":"skip","Package":"ex/p","Test":"TestT/sub"}
{"Action":"pass","Package":"ex/p","Test":"TestT"}
{"Action":"output","Package":"ex/p","Output":"FAIL\n"}
{"Action":"output","Package":"ex/p","Output":"FAIL\tex/p\t0.01s\n"}
{"Action":"fail","Package":"ex/p"}
{"Action":"output","Package":"ex/q","Output":"ok  \tex/q\t0.01s\n"}
{"Action":"pass","Package":"ex/q"}
# ex/r
r.go:3:1: syntax error
`

func TestFilter(t *testing.T) {
	var out, log bytes.Buffer
	if err := filter(&out, strings.NewReader(stream), &log); err != nil {
		t.Fatal(err)
	}
	want := "=== RUN   TestBad\n    p_test.go:9: got 1, want 2\n--- FAIL: TestBad (0.00s)\nFAIL\tex/p\t0.01s\nok  \tex/q\t0.01s\n# ex/r\nr.go:3:1: syntax error\n"
	if out.String() != want {
		t.Errorf("filter printed\n%s\nwant\n%s", out.String(), want)
	}
	if log.String() != stream {
		t.Errorf("log = %q, want the input", log.String())
	}
}

func TestSkips(t *testing.T) {
	got, err := skipsOf(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	want := []Skip{{"ex/p", "TestRoot", "p_test.go:12: needs root: makes TUN devices"}, {"ex/p", "TestT/sub", "p_test.go:20: needs dig"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("skipsOf = %+v, want %+v", got, want)
	}
}
