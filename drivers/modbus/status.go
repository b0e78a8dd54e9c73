package modbus

import "strconv"

// statusRules resolves the sensors' StatusConfig (validated: the status
// word is another sensor of the device, its bits fit it).
func statusRules(sensors []SensorConfig, ix map[string]int) []statusRule {
	var out []statusRule
	for i := range sensors {
		st := sensors[i].Status
		if st == nil {
			continue
		}
		r := statusRule{sensor: ix[sensors[i].ID], word: ix[st.Sensor], wordID: st.Sensor}
		for _, b := range st.BadBits {
			r.bad |= 1 << b
		}
		for _, b := range st.UncertainBits {
			r.uncertain |= 1 << b
		}
		out = append(out, r)
	}
	return out
}

// applyStatus lowers the quality of readings whose detector's status word
// says so: a bad bit makes the reading bad (its bad alarm: a detector in
// fault or inhibit that reads 0 is not clean air), an uncertain bit makes
// a good reading uncertain (its limit alarms hold: warm-up, calibration).
// A status word that was not read leaves nothing to judge the reading by:
// bad, on the safe side.
func applyStatus(rules []statusRule, rs []Reading) {
	for _, r := range rules {
		rd, w := &rs[r.sensor], &rs[r.word]
		if rd.Quality == QualityBad {
			continue
		}
		if w.Quality != QualityGood {
			rd.Quality, rd.Reason = QualityBad, "status word "+r.wordID+" unread"
			continue
		}
		word := uint64(int64(w.Value)) // two's complement for a signed word
		switch {
		case word&r.bad != 0:
			rd.Quality, rd.Fault, rd.Reason = QualityBad, true, "status "+r.wordID+" bit "+strconv.Itoa(lowestBit(word&r.bad))+" (bad)"
		case word&r.uncertain != 0 && rd.Quality == QualityGood:
			rd.Quality, rd.Reason = QualityUncertain, "status "+r.wordID+" bit "+strconv.Itoa(lowestBit(word&r.uncertain))+" (uncertain)"
		}
	}
}

func lowestBit(v uint64) int {
	n := 0
	for v&1 == 0 {
		v >>= 1
		n++
	}
	return n
}
