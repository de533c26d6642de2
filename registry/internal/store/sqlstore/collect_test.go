package sqlstore

import (
	"errors"
	"reflect"
	"testing"
)

// fakeRows yields ints, then err.
type fakeRows struct {
	vals []int
	i    int
	err  error
}

func (f *fakeRows) Next() bool { f.i++; return f.i <= len(f.vals) }
func (f *fakeRows) Err() error { return f.err }
func (f *fakeRows) Scan(dest ...any) error {
	*dest[0].(*int) = f.vals[f.i-1]
	return nil
}

func scanInt(r Scanner) (int, error) {
	var v int
	err := r.Scan(&v)
	if v < 0 {
		return 0, errors.New("negative")
	}
	return v, err
}

func TestCollect(t *testing.T) {
	if got, err := Collect(&fakeRows{}, scanInt); err != nil || got != nil {
		t.Fatalf("Collect(no rows) = %#v, %v; want nil", got, err)
	}
	if got, err := Collect(&fakeRows{vals: []int{3, 1, 2}}, scanInt); err != nil || !reflect.DeepEqual(got, []int{3, 1, 2}) {
		t.Fatalf("Collect = %v, %v; want [3 1 2] in order", got, err)
	}
	if _, err := Collect(&fakeRows{vals: []int{1, -1}}, scanInt); err == nil {
		t.Fatal("Collect hid a row's decoding error")
	}
	broken := errors.New("connection lost")
	if _, err := Collect(&fakeRows{vals: []int{1}, err: broken}, scanInt); !errors.Is(err, broken) {
		t.Fatalf("Collect = %v, want the rows' error", err)
	}
}
