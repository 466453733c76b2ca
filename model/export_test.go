package model

// FreezeForTest sets the net's batch norm switches as training does at the
// start of an epoch (1-based).
func FreezeForTest(n *Net, epoch int) { n.freezeStats(epoch) }
