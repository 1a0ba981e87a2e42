package natsconn

import (
	"erasure"
	"erasure/connector/wire"
)

// MaxAckBytes is the largest acknowledgement accepted, in bytes.
const MaxAckBytes = wire.MaxAckBytes

// MaxAckError is the longest "error" text an acknowledgement may carry, in bytes.
const MaxAckError = wire.MaxAckError

// EncodeCommand returns the JSON form of c (wire.EncodeCommand) with c.AckSubject as the
// acknowledgement's subject.
func EncodeCommand(c erasure.Command, keys []string) ([]byte, error) {
	return wire.EncodeCommand(c, keys, wire.AckTo{Subject: c.AckSubject})
}

// DecodeAck decodes an acknowledgement strictly (wire.DecodeAck).
func DecodeAck(data []byte) (erasure.Ack, error) { return wire.DecodeAck(data) }
