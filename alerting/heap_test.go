package alerting

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestTimerHeapModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Unix(1e9, 0)
	for round := 0; round < 200; round++ {
		const n = 40
		var h timerHeap
		h.init(n)
		model := map[int32]time.Time{}
		for op := 0; op < 2000; op++ {
			id := int32(rng.IntN(n))
			switch rng.IntN(4) {
			case 0, 1:
				at := base.Add(time.Duration(rng.IntN(100)) * time.Second)
				h.set(id, at)
				model[id] = at
			case 2:
				h.remove(id)
				delete(model, id)
			case 3:
				if h.len() == 0 {
					continue
				}
				min := h.minAt()
				for mid, mt := range model {
					if mt.Before(min) {
						t.Fatalf("heap min %v but %d at %v", min, mid, mt)
					}
				}
				got := h.pop()
				if !model[got].Equal(min) {
					t.Fatalf("popped %d at %v, min %v", got, model[got], min)
				}
				delete(model, got)
			}
			if h.len() != len(model) {
				t.Fatalf("len %d vs %d", h.len(), len(model))
			}
			for i, id := range h.id {
				if h.pos[id] != int32(i) {
					t.Fatalf("pos broken")
				}
			}
		}
	}
}
