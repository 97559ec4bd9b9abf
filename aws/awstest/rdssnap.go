package awstest

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

func (s *Server) createSnapshot(f url.Values, cluster bool) (any, *Fault) {
	var snapID, sourceID, engine, version string
	if cluster {
		if fault := missing(f, "DBClusterIdentifier", "DBClusterSnapshotIdentifier"); fault != nil {
			return nil, fault
		}
		snapID, sourceID = f.Get("DBClusterSnapshotIdentifier"), f.Get("DBClusterIdentifier")
		c := s.rds.clusters[sourceID]
		if c == nil {
			return nil, notFound("DBClusterNotFoundFault", "DBCluster "+sourceID+" not found.")
		}
		engine, version = c.Engine, c.EngineVersion
		if s.rds.snapshots[snapKey(snapID, true)] != nil {
			return nil, badRequest("DBClusterSnapshotAlreadyExistsFault", "Cannot create the cluster snapshot because one with the identifier "+snapID+" already exists.")
		}
	} else {
		if fault := missing(f, "DBInstanceIdentifier", "DBSnapshotIdentifier"); fault != nil {
			return nil, fault
		}
		snapID, sourceID = f.Get("DBSnapshotIdentifier"), f.Get("DBInstanceIdentifier")
		in := s.rds.instances[sourceID]
		if in == nil {
			return nil, notFound("DBInstanceNotFound", "DBInstance "+sourceID+" not found.")
		}
		if in.ClusterID != "" {
			return nil, badRequest("InvalidParameterValue", "The specified instance is a member of a cluster and a snapshot cannot be created directly. Please use the CreateDBClusterSnapshot API instead.")
		}
		engine, version = in.Engine, in.EngineVersion
		if s.rds.snapshots[snapKey(snapID, false)] != nil {
			return nil, badRequest("DBSnapshotAlreadyExists", "Cannot create the snapshot because a snapshot with the identifier "+snapID+" already exists.")
		}
		if s.Backend.SnapshotInstance != nil {
			if err := s.Backend.SnapshotInstance(sourceID, snapID); err != nil {
				return nil, backendFailure(err)
			}
		}
	}
	sn := &snapshot{Snapshot: Snapshot{ID: snapID, SourceID: sourceID, Status: "creating", Engine: engine, EngineVersion: version}, cluster: cluster}
	sn.t = s.after(func() { sn.Status = "available" })
	s.rds.snapshots[snapKey(snapID, cluster)] = sn
	return snapshotResult(sn), nil
}

func snapshotResult(sn *snapshot) any {
	if sn.cluster {
		return struct{ DBClusterSnapshot any }{renderSnapshot(sn)}
	}
	return struct{ DBSnapshot any }{renderSnapshot(sn)}
}

func (s *Server) describeSnapshots(f url.Values, cluster bool) (any, *Fault) {
	key, code := "DBSnapshotIdentifier", "DBSnapshotNotFound"
	if cluster {
		key, code = "DBClusterSnapshotIdentifier", "DBClusterSnapshotNotFoundFault"
	}
	id := f.Get(key)
	var found []*snapshot
	if id != "" {
		sn := s.rds.snapshots[snapKey(id, cluster)]
		if sn == nil {
			return nil, notFound(code, "Snapshot "+id+" not found.")
		}
		tick(&sn.t)
		found = append(found, sn)
	} else {
		for _, sn := range s.rds.snapshots {
			if sn.cluster == cluster {
				found = append(found, sn)
			}
		}
		sort.Slice(found, func(i, j int) bool { return found[i].ID < found[j].ID })
	}
	if cluster {
		var out struct {
			DBClusterSnapshots []any `xml:"DBClusterSnapshots>DBClusterSnapshot"`
		}
		for _, sn := range found {
			out.DBClusterSnapshots = append(out.DBClusterSnapshots, renderSnapshot(sn))
		}
		return out, nil
	}
	var out struct {
		DBSnapshots []any `xml:"DBSnapshots>DBSnapshot"`
	}
	for _, sn := range found {
		out.DBSnapshots = append(out.DBSnapshots, renderSnapshot(sn))
	}
	return out, nil
}

func (s *Server) modifyDBSnapshot(f url.Values) (any, *Fault) {
	id := f.Get("DBSnapshotIdentifier")
	sn := s.rds.snapshots[snapKey(id, false)]
	if sn == nil {
		return nil, notFound("DBSnapshotNotFound", "Snapshot "+id+" not found.")
	}
	if sn.Status != "available" {
		return nil, badRequest("InvalidDBSnapshotState", "Cannot modify engine version because snapshot "+id+" is not in available state.")
	}
	if v := f.Get("EngineVersion"); v != "" {
		if !s.canUpgrade(sn.Engine, sn.EngineVersion, v) {
			return nil, badRequest("InvalidParameterCombination", "Cannot upgrade "+sn.Engine+" snapshot "+id+" from "+sn.EngineVersion+" to "+v)
		}
		sn.Status = "upgrading"
		sn.t = s.after(func() { sn.Status, sn.EngineVersion = "available", v })
	}
	return snapshotResult(sn), nil
}

func (s *Server) restoreDBInstanceFromDBSnapshot(f url.Values) (any, *Fault) {
	if fault := missing(f, "DBInstanceIdentifier", "DBSnapshotIdentifier"); fault != nil {
		return nil, fault
	}
	id, snapID := f.Get("DBInstanceIdentifier"), f.Get("DBSnapshotIdentifier")
	sn := s.rds.snapshots[snapKey(snapID, false)]
	if sn == nil {
		return nil, notFound("DBSnapshotNotFound", "DBSnapshot "+snapID+" not found.")
	}
	if sn.Status != "available" {
		return nil, badRequest("InvalidDBSnapshotState", "Snapshot "+snapID+" is not in available state.")
	}
	if s.rds.instances[id] != nil {
		return nil, badRequest("DBInstanceAlreadyExists", "DB instance already exists")
	}
	class := f.Get("DBInstanceClass")
	if class == "" {
		if src := s.rds.instances[sn.SourceID]; src != nil {
			class = src.Class
		}
	}
	if g := f.Get("DBParameterGroupName"); g != "" {
		if fault := s.groupFits(g, false, sn.Engine, sn.EngineVersion); fault != nil {
			return nil, fault
		}
	}
	redo := s.RedoLSN
	if s.Backend.RestoreInstance != nil {
		var err error
		if redo, err = s.Backend.RestoreInstance(snapID, id, sn.EngineVersion); err != nil {
			return nil, backendFailure(err)
		}
	}
	in := s.addInstance(Instance{
		ID: id, Class: class, Engine: sn.Engine, EngineVersion: sn.EngineVersion, Status: "creating",
		ParameterGroup: f.Get("DBParameterGroupName"), SubnetGroup: or(f.Get("DBSubnetGroupName"), "default"),
		SecurityGroupIDs: list(f, "VpcSecurityGroupIds.VpcSecurityGroupId"),
		MultiAZ:          f.Get("MultiAZ") == "true", IAMAuth: f.Get("EnableIAMDatabaseAuthentication") == "true",
		// Left out, RDS's default in a default VPC is public: only an
		// explicit false keeps it private.
		PubliclyAccessible: f.Get("PubliclyAccessible") != "false",
		DeletionProtection: f.Get("DeletionProtection") == "true",
	})
	in.t = s.after(func() { in.Status = "available" })
	if redo != "" {
		s.rds.logs[id] = append(s.rds.logs[id], recoveryLog(redo))
	}
	return struct{ DBInstance xInstance }{s.renderInstance(in)}, nil
}

// recoveryLog is the log of a snapshot's first start: recovery ending in
// "redo done at", then a restart (the upgrade) with a second one.
func recoveryLog(lsn string) LogFile {
	now := time.Now().UTC()
	ts := now.Format("2006-01-02 15:04:05 UTC")
	return LogFile{
		Name:        "error/postgresql.log." + now.Format("2006-01-02-15"),
		LastWritten: now,
		Data: ts + "::@:[401]:LOG:  starting PostgreSQL\n" +
			ts + "::@:[405]:LOG:  database system was interrupted; last known up at " + ts + "\n" +
			ts + "::@:[405]:LOG:  redo starts at 0/2000028\n" +
			ts + "::@:[405]:LOG:  redo done at " + lsn + " system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.01 s\n" +
			ts + "::@:[405]:LOG:  checkpoint starting: end-of-recovery immediate wait\n" +
			ts + "::@:[401]:LOG:  database system is ready to accept connections\n" +
			ts + "::@:[777]:LOG:  redo done at FF/0 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.01 s\n",
	}
}

func (s *Server) describeDBLogFiles(f url.Values) (any, *Fault) {
	id := f.Get("DBInstanceIdentifier")
	if s.rds.instances[id] == nil {
		return nil, notFound("DBInstanceNotFound", "DBInstance "+id+" not found.")
	}
	since, _ := strconv.ParseInt(f.Get("FileLastWritten"), 10, 64)
	contains := f.Get("FilenameContains")
	var files []xLogFile
	for _, lf := range s.rds.logs[id] {
		ms := lf.LastWritten.UnixMilli()
		if ms < since || !strings.Contains(lf.Name, contains) {
			continue
		}
		files = append(files, xLogFile{LogFileName: lf.Name, LastWritten: ms, Size: int64(len(lf.Data))})
	}
	// RDS lists files by name; the client must not rely on time order.
	sort.Slice(files, func(i, j int) bool { return files[i].LogFileName < files[j].LogFileName })
	start, end, marker := s.page(f, len(files))
	var out struct {
		DescribeDBLogFiles []xLogFile `xml:"DescribeDBLogFiles>DescribeDBLogFilesDetails"`
		Marker             string     `xml:",omitempty"`
	}
	out.DescribeDBLogFiles, out.Marker = files[start:end], marker
	return out, nil
}

func (s *Server) downloadDBLogFilePortion(f url.Values) (any, *Fault) {
	id, name := f.Get("DBInstanceIdentifier"), f.Get("LogFileName")
	if s.rds.instances[id] == nil {
		return nil, notFound("DBInstanceNotFound", "DBInstance "+id+" not found.")
	}
	var data *string
	for i := range s.rds.logs[id] {
		if s.rds.logs[id][i].Name == name {
			data = &s.rds.logs[id][i].Data
		}
	}
	if data == nil {
		return nil, notFound("DBLogFileNotFoundFault", "DBLogFile "+name+" not found.")
	}
	off, err := strconv.Atoi(or(f.Get("Marker"), "0"))
	if err != nil || off < 0 || off > len(*data) {
		return nil, badRequest("InvalidParameterValue", "invalid Marker "+f.Get("Marker"))
	}
	end := min(off+max(s.LogPortion, 1), len(*data))
	if end < len(*data) {
		if cut := runeCut(*data, end); cut > off {
			end = cut
		}
	}
	return struct {
		LogFileData           string
		Marker                string
		AdditionalDataPending bool
	}{(*data)[off:end], strconv.Itoa(end), end < len(*data)}, nil
}

func (s *Server) deleteDBCluster(f url.Values) (any, *Fault) {
	id := f.Get("DBClusterIdentifier")
	c := s.rds.clusters[id]
	if c == nil {
		return nil, notFound("DBClusterNotFoundFault", "DBCluster "+id+" not found.")
	}
	if c.DeletionProtection {
		return nil, badRequest("InvalidParameterCombination", "Cannot delete protected Cluster, please disable deletion protection and try again.")
	}
	if len(s.members(id)) > 0 {
		return nil, badRequest("InvalidDBClusterStateFault", "Cluster cannot be deleted, it still contains DB instances in non-deleting state.")
	}
	final := f.Get("FinalDBSnapshotIdentifier")
	if f.Get("SkipFinalSnapshot") != "true" {
		if final == "" {
			return nil, badRequest("InvalidParameterCombination", "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
		}
		s.rds.snapshots[snapKey(final, true)] = &snapshot{Snapshot: Snapshot{ID: final, SourceID: id, Status: "available", Engine: c.Engine, EngineVersion: c.EngineVersion}, cluster: true}
	}
	c.Status = "deleting"
	out := struct{ DBCluster xCluster }{s.renderCluster(c)}
	delete(s.rds.clusters, id)
	return out, nil
}

func (s *Server) deleteDBInstance(f url.Values) (any, *Fault) {
	id := f.Get("DBInstanceIdentifier")
	in := s.rds.instances[id]
	if in == nil {
		return nil, notFound("DBInstanceNotFound", "DBInstance "+id+" not found.")
	}
	if in.DeletionProtection {
		return nil, badRequest("InvalidParameterCombination", "Cannot delete protected DB Instance, please disable deletion protection and try again.")
	}
	final := f.Get("FinalDBSnapshotIdentifier")
	if in.ClusterID != "" && (final != "" || f.Get("SkipFinalSnapshot") != "") {
		return nil, badRequest("InvalidParameterCombination", "FinalDBSnapshotIdentifier and SkipFinalSnapshot do not apply to a DB instance in a cluster.")
	}
	if in.ClusterID == "" && f.Get("SkipFinalSnapshot") != "true" {
		if final == "" {
			return nil, badRequest("InvalidParameterCombination", "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
		}
		s.rds.snapshots[snapKey(final, false)] = &snapshot{Snapshot: Snapshot{ID: final, SourceID: id, Status: "available", Engine: in.Engine, EngineVersion: in.EngineVersion}}
	}
	in.Status = "deleting"
	out := struct{ DBInstance xInstance }{s.renderInstance(in)}
	delete(s.rds.instances, id)
	return out, nil
}
