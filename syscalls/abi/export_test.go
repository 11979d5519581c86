package abi

// ValsCap exposes how many values a Request holds storage for, so the
// fuzzers can check that decoding never allocates more than the message's
// size accounts for.
func ValsCap(r *Request) int { return cap(r.vals) }

// ReplyValsCap is ValsCap for a Reply.
func ReplyValsCap(r *Reply) int { return cap(r.vals) }
