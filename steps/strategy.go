package steps

// Strategy returns the ordered steps of one strategy, new values each call
// (nil for an unknown name). Each step is one value, defined in the file
// of its phase.
func Strategy(name string) []*Step {
	prepare := []*Step{preflight(), enableLogicalReplication(), createReplicationRole(), replicaIdentityFull(),
		createPublications(), createSlots()}
	replicate := func(clone bool) []*Step {
		out := []*Step{upgradeExtensions(), blockGreenLogins(), compareSchema(), recordDDL()}
		if !clone {
			out = append(out, copyData())
		}
		out = append(out, createSubscriptions())
		if clone {
			out = append(out, advanceOrigins())
		}
		// What replication does not carry comes once green has caught up:
		// materialized views and large objects before analyze-green, the
		// unlogged tables' snapshot last, right before the cutover.
		return append(out, enableSubscriptions(), waitCatchUp(), refreshMatviews(), copyLargeObjects(), analyzeGreen(), verifyData(), copyUnlogged())
	}
	finish := []*Step{cutoverStep(), rollbackStep(), switchTraffic(),
		dropSubscriptions(), dropPublications(), revertReplicaIdentity(), removeDDLRecorder(), decommission()}
	var list []*Step
	switch name {
	case "copy":
		list = append(append(prepare, copyRoles(), createDatabases(), copySchema()), replicate(false)...)
	case "clone":
		list = append(append(prepare, cloneLocal(), greenStartLSN(), dropClonedReplication()), replicate(true)...)
	case "aurora-clone":
		prepare[1] = enableLogicalReplicationAWS()
		list = append(append(prepare, cloneCluster(), greenStartLSNAWS(), dropClonedReplication(), upgradeGreen(), createGreenReaders()), replicate(true)...)
	case "rds-snapshot":
		prepare[1] = enableLogicalReplicationAWS()
		list = append(append(prepare, snapshotBlue(), upgradeSnapshot(), restoreGreen(), greenStartLSNAWS(), dropClonedReplication()), replicate(true)...)
	default:
		return nil
	}
	if name == "aurora-clone" || name == "rds-snapshot" {
		// Runbook 000's traffic steps around the cutover (optional).
		return append(append(list, trafficToPgBouncer()), awsFinish(finish)...)
	}
	return append(list, finish...)
}

// awsFinish is finish with readers-to-green right after switch-traffic.
func awsFinish(finish []*Step) []*Step {
	var out []*Step
	for _, s := range finish {
		out = append(out, s)
		if s.ID == switchTrafficID {
			out = append(out, readersToGreen())
		}
	}
	return out
}
