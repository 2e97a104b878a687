package fault

import (
	"errors"
	"fmt"
	"testing"
)

func TestAsFindsTheRefusalThroughWrapping(t *testing.T) {
	cause := errors.New("redis: connection refused")
	f := Wrap(Unavailable, "unavailable", "Try again.", cause)
	err := fmt.Errorf("start: %w", f)
	got, ok := As(err)
	if !ok || got != f {
		t.Fatalf("As = %v, %v", got, ok)
	}
	if KindOf(err) != Unavailable || CodeOf(err) != "unavailable" {
		t.Errorf("kind %v code %q", KindOf(err), CodeOf(err))
	}
	if !errors.Is(err, cause) {
		t.Error("the cause is not in the chain")
	}
	if KindOf(cause) != 0 || CodeOf(cause) != "" {
		t.Error("a plain error has a kind")
	}
}

func TestWithCopies(t *testing.T) {
	base := New(Conflict, "x", "y")
	a := base.With("session", 1)
	b := a.With("problems", 2)
	if base.Details != nil || len(a.Details) != 1 || len(b.Details) != 2 {
		t.Errorf("details shared: %v %v %v", base.Details, a.Details, b.Details)
	}
}

func TestKindNames(t *testing.T) {
	for k := Invalid; k <= NotImplemented; k++ {
		if k.String() == "internal" {
			t.Errorf("kind %d has no name", k)
		}
	}
	if Kind(0).String() != "internal" {
		t.Error("the zero kind is named")
	}
}
