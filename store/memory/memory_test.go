package memory_test

import (
	"testing"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
	"github.com/hatchery-dev/hatchery/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return memory.New() })
}

func BenchmarkUpdate(b *testing.B) {
	storetest.BenchmarkUpdate(b, func(*testing.B) store.Store { return memory.New() })
}
