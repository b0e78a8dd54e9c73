package simulator

import (
	"errors"
	"fmt"
)

// rtuMaxFrame is the longest RTU frame: address, 253 bytes of PDU, CRC.
const rtuMaxFrame = 256

// crc16 is the Modbus RTU CRC (polynomial 0xA001 reflected, init 0xFFFF).
func crc16(b []byte) uint16 {
	crc := uint16(0xffff)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xa001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

var (
	errShortFrame = errors.New("rtu frame shorter than 4 bytes")
	errLongFrame  = errors.New("rtu frame longer than 256 bytes")
)

// parseRTUFrame checks one silence-delimited RTU frame and splits it into
// unit and PDU. The PDU aliases the frame.
func parseRTUFrame(frame []byte) (uint8, []byte, error) {
	if len(frame) < 4 {
		return 0, nil, errShortFrame
	}
	if len(frame) > rtuMaxFrame {
		return 0, nil, errLongFrame
	}
	n := len(frame) - 2
	got := uint16(frame[n]) | uint16(frame[n+1])<<8
	if want := crc16(frame[:n]); got != want {
		return 0, nil, fmt.Errorf("rtu crc %04x, want %04x", got, want)
	}
	return frame[0], frame[1:n], nil
}

// rtuFrame builds an RTU frame: unit, PDU, CRC low byte first.
func rtuFrame(unit uint8, pdu []byte) []byte {
	out := make([]byte, 0, len(pdu)+3)
	out = append(out, unit)
	out = append(out, pdu...)
	c := crc16(out)
	return append(out, byte(c), byte(c>>8))
}
