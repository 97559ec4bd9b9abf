package awstest

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

type rdsHandler func(s *Server, f url.Values) (any, *Fault)

var rdsHandlers map[string]rdsHandler

func init() {
	rdsHandlers = map[string]rdsHandler{
		"DescribeDBClusters":               (*Server).describeDBClusters,
		"DescribeDBInstances":              (*Server).describeDBInstances,
		"DescribeDBClusterParameters":      func(s *Server, f url.Values) (any, *Fault) { return s.describeParameters(f, true) },
		"DescribeDBParameters":             func(s *Server, f url.Values) (any, *Fault) { return s.describeParameters(f, false) },
		"ModifyDBClusterParameterGroup":    func(s *Server, f url.Values) (any, *Fault) { return s.modifyParameterGroup(f, true) },
		"ModifyDBParameterGroup":           func(s *Server, f url.Values) (any, *Fault) { return s.modifyParameterGroup(f, false) },
		"RebootDBInstance":                 (*Server).rebootDBInstance,
		"RestoreDBClusterToPointInTime":    (*Server).restoreDBClusterToPointInTime,
		"CreateDBInstance":                 (*Server).createDBInstance,
		"ModifyDBCluster":                  (*Server).modifyDBCluster,
		"CreateDBSnapshot":                 func(s *Server, f url.Values) (any, *Fault) { return s.createSnapshot(f, false) },
		"CreateDBClusterSnapshot":          func(s *Server, f url.Values) (any, *Fault) { return s.createSnapshot(f, true) },
		"DescribeDBSnapshots":              func(s *Server, f url.Values) (any, *Fault) { return s.describeSnapshots(f, false) },
		"DescribeDBClusterSnapshots":       func(s *Server, f url.Values) (any, *Fault) { return s.describeSnapshots(f, true) },
		"ModifyDBSnapshot":                 (*Server).modifyDBSnapshot,
		"RestoreDBInstanceFromDBSnapshot":  (*Server).restoreDBInstanceFromDBSnapshot,
		"DescribeDBLogFiles":               (*Server).describeDBLogFiles,
		"DownloadDBLogFilePortion":         (*Server).downloadDBLogFilePortion,
		"DeleteDBCluster":                  (*Server).deleteDBCluster,
		"DeleteDBInstance":                 (*Server).deleteDBInstance,
		"ModifyDBInstance":                 (*Server).modifyDBInstance,
		"DescribeDBClusterParameterGroups": func(s *Server, f url.Values) (any, *Fault) { return s.describeParameterGroups(f, true) },
		"DescribeDBParameterGroups":        func(s *Server, f url.Values) (any, *Fault) { return s.describeParameterGroups(f, false) },
		"CreateDBClusterParameterGroup":    func(s *Server, f url.Values) (any, *Fault) { return s.createParameterGroup(f, true) },
		"CreateDBParameterGroup":           func(s *Server, f url.Values) (any, *Fault) { return s.createParameterGroup(f, false) },
		"DescribeDBEngineVersions":         (*Server).describeDBEngineVersions,
		"DescribeEvents":                   (*Server).describeEvents,
	}
}

func (s *Server) serveRDS(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	action := form.Get("Action")
	params := map[string]string{}
	for k, v := range form {
		if len(v) > 0 {
			params[k] = v[0]
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	reqID := "req-" + s.newID()
	if fault := s.record("rds", action, params); fault != nil {
		writeXMLError(w, rdsNS, fault, reqID)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		writeXMLError(w, rdsNS, &Fault{Code: "MalformedQueryString", Message: "unexpected Content-Type " + ct, Status: 400}, reqID)
		return
	}
	h := rdsHandlers[action]
	if h == nil || form.Get("Version") != "2014-10-31" {
		writeXMLError(w, rdsNS, &Fault{Code: "InvalidAction", Message: "The action " + action + " is not valid for this web service.", Status: 400}, reqID)
		return
	}
	result, fault := h(s, form)
	if fault != nil {
		writeXMLError(w, rdsNS, fault, reqID)
		return
	}
	s.writeRDS(w, action, result, reqID)
}

func notFound(code, msg string) *Fault { return &Fault{Code: code, Message: msg, Status: 404} }

func badRequest(code, msg string) *Fault { return &Fault{Code: code, Message: msg, Status: 400} }

func missing(f url.Values, names ...string) *Fault {
	for _, n := range names {
		if f.Get(n) == "" {
			return badRequest("MissingParameter", "The request must contain the parameter "+n)
		}
	}
	return nil
}

// list reads a query list: prefix.1, prefix.2, ...
func list(f url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := f[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

// page cuts n items at the request's Marker (an offset) and MaxRecords.
func (s *Server) page(f url.Values, n int) (start, end int, marker string) {
	size := s.PageSize
	if m, err := strconv.Atoi(f.Get("MaxRecords")); err == nil && m > 0 && m < size {
		size = m
	}
	start, _ = strconv.Atoi(f.Get("Marker"))
	start = min(max(start, 0), n)
	end = min(start+size, n)
	if end < n {
		marker = strconv.Itoa(end)
	}
	return start, end, marker
}

func (s *Server) describeDBClusters(f url.Values) (any, *Fault) {
	var out struct {
		DBClusters []xCluster `xml:"DBClusters>DBCluster"`
	}
	if id := f.Get("DBClusterIdentifier"); id != "" {
		c := s.rds.clusters[id]
		if c == nil {
			return nil, notFound("DBClusterNotFoundFault", "DBCluster "+id+" not found.")
		}
		tick(&c.t)
		for _, in := range s.members(id) {
			tick(&in.cat)
		}
		out.DBClusters = append(out.DBClusters, s.renderCluster(c))
		return out, nil
	}
	ids := make([]string, 0, len(s.rds.clusters))
	for id := range s.rds.clusters {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		out.DBClusters = append(out.DBClusters, s.renderCluster(s.rds.clusters[id]))
	}
	return out, nil
}

func (s *Server) describeDBInstances(f url.Values) (any, *Fault) {
	var out struct {
		DBInstances []xInstance `xml:"DBInstances>DBInstance"`
	}
	if id := f.Get("DBInstanceIdentifier"); id != "" {
		in := s.rds.instances[id]
		if in == nil {
			return nil, notFound("DBInstanceNotFound", "DBInstance "+id+" not found.")
		}
		tick(&in.t)
		tick(&in.at)
		out.DBInstances = append(out.DBInstances, s.renderInstance(in))
		return out, nil
	}
	for _, id := range s.rds.order {
		if in := s.rds.instances[id]; in != nil {
			out.DBInstances = append(out.DBInstances, s.renderInstance(in))
		}
	}
	return out, nil
}

func (s *Server) rebootDBInstance(f url.Values) (any, *Fault) {
	id := f.Get("DBInstanceIdentifier")
	in := s.rds.instances[id]
	if in == nil {
		return nil, notFound("DBInstanceNotFound", "DBInstance "+id+" not found.")
	}
	if in.Status != "available" {
		return nil, badRequest("InvalidDBInstanceState", "Instance "+id+" is not currently in the available state.")
	}
	in.Status = "rebooting"
	// A reboot applies what waits for it; a change still being applied is
	// not (RDS's advice: wait for pending-reboot before rebooting).
	in.t = s.after(func() {
		in.Status = "available"
		if in.apply == "pending-reboot" {
			in.apply = "in-sync"
		}
		if in.clusterApply == "pending-reboot" {
			in.clusterApply = "in-sync"
		}
	})
	return struct{ DBInstance xInstance }{s.renderInstance(in)}, nil
}

func (s *Server) restoreDBClusterToPointInTime(f url.Values) (any, *Fault) {
	if fault := missing(f, "DBClusterIdentifier", "SourceDBClusterIdentifier"); fault != nil {
		return nil, fault
	}
	id, src := f.Get("DBClusterIdentifier"), f.Get("SourceDBClusterIdentifier")
	source := s.rds.clusters[src]
	if source == nil {
		return nil, notFound("DBClusterNotFoundFault", "DBCluster "+src+" not found.")
	}
	if s.rds.clusters[id] != nil {
		return nil, badRequest("DBClusterAlreadyExistsFault", "DB Cluster already exists")
	}
	if f.Get("UseLatestRestorableTime") != "true" && f.Get("RestoreToTime") == "" {
		return nil, badRequest("InvalidParameterCombination", "Either RestoreToTime or UseLatestRestorableTime must be specified")
	}
	group := or(f.Get("DBClusterParameterGroupName"), "default."+family(source.Engine, source.EngineVersion))
	if fault := s.groupFits(group, true, source.Engine, source.EngineVersion); fault != nil {
		return nil, fault
	}
	redo := ""
	if s.Backend.CloneCluster != nil {
		var err error
		if redo, err = s.Backend.CloneCluster(src, id); err != nil {
			return nil, backendFailure(err)
		}
	}
	c := &cluster{Cluster: Cluster{
		ID: id, Engine: source.Engine, EngineVersion: source.EngineVersion, Status: "creating",
		ParameterGroup:     group,
		SubnetGroup:        or(f.Get("DBSubnetGroupName"), "default"),
		SecurityGroupIDs:   list(f, "VpcSecurityGroupIds.VpcSecurityGroupId"),
		DeletionProtection: f.Get("DeletionProtection") == "true",
		LogExports:         list(f, "EnableCloudwatchLogsExports.member"),
		SourceID:           src,
		RestoreType:        or(f.Get("RestoreType"), "full-copy"),
		LogicalSlots:       source.LogicalSlots,
		Created:            time.Now().UTC(),
	}, redo: redo}
	if len(c.SecurityGroupIDs) == 0 {
		c.SecurityGroupIDs = []string{"sg-default"}
	}
	c.t = s.after(func() { c.Status = "available" })
	s.rds.clusters[id] = c
	return struct{ DBCluster xCluster }{s.renderCluster(c)}, nil
}

func (s *Server) createDBInstance(f url.Values) (any, *Fault) {
	if fault := missing(f, "DBInstanceIdentifier", "DBInstanceClass", "Engine"); fault != nil {
		return nil, fault
	}
	id, clusterID := f.Get("DBInstanceIdentifier"), f.Get("DBClusterIdentifier")
	if s.rds.instances[id] != nil {
		return nil, badRequest("DBInstanceAlreadyExists", "DB instance already exists")
	}
	if clusterID != "" {
		c := s.rds.clusters[clusterID]
		if c == nil {
			return nil, notFound("DBClusterNotFoundFault", "DBCluster "+clusterID+" not found.")
		}
		if c.Engine != f.Get("Engine") {
			return nil, badRequest("InvalidParameterCombination", "The engine name requested for your DB instance ("+f.Get("Engine")+") doesn't match the engine name of your DB cluster ("+c.Engine+").")
		}
		// RDS adds instances only to an available cluster.
		if c.Status != "available" {
			return nil, badRequest("InvalidDBClusterStateFault", "DB cluster "+clusterID+" is not in the available state (it is "+c.Status+").")
		}
	}
	version := f.Get("EngineVersion")
	if c := s.rds.clusters[clusterID]; c != nil {
		version = c.EngineVersion
	}
	if g := f.Get("DBParameterGroupName"); g != "" {
		if fault := s.groupFits(g, false, f.Get("Engine"), version); fault != nil {
			return nil, fault
		}
	}
	// Left out, PubliclyAccessible is RDS's default, which in a default VPC
	// with public subnets is true: only an explicit false keeps it private.
	public := f.Get("PubliclyAccessible") != "false"
	in := s.addInstance(Instance{
		ID: id, ClusterID: clusterID, Class: f.Get("DBInstanceClass"), Engine: f.Get("Engine"),
		EngineVersion: version, Status: "creating",
		ParameterGroup: f.Get("DBParameterGroupName"), SubnetGroup: f.Get("DBSubnetGroupName"),
		SecurityGroupIDs: list(f, "VpcSecurityGroupIds.VpcSecurityGroupId"),
		MultiAZ:          f.Get("MultiAZ") == "true", PubliclyAccessible: public,
		DeletionProtection: f.Get("DeletionProtection") == "true",
	})
	if c := s.rds.clusters[clusterID]; c != nil && c.redo != "" && len(s.members(clusterID)) == 1 {
		s.rds.logs[id] = append(s.rds.logs[id], recoveryLog(c.redo))
	}
	in.t = s.after(func() { in.Status = "available" })
	return struct{ DBInstance xInstance }{s.renderInstance(in)}, nil
}

func (s *Server) modifyDBCluster(f url.Values) (any, *Fault) {
	id := f.Get("DBClusterIdentifier")
	c := s.rds.clusters[id]
	if c == nil {
		return nil, notFound("DBClusterNotFoundFault", "DBCluster "+id+" not found.")
	}
	if c.Status != "available" {
		return nil, badRequest("InvalidDBClusterStateFault", "DbCluster "+id+" is not in available state.")
	}
	members := s.members(id)
	for _, in := range members {
		if in.Status != "available" {
			return nil, badRequest("InvalidDBClusterStateFault", "DbCluster "+id+" has instance "+in.ID+" in state "+in.Status+"; every instance must be available.")
		}
	}
	version := f.Get("EngineVersion")
	clusterPG, instancePG := f.Get("DBClusterParameterGroupName"), f.Get("DBInstanceParameterGroupName")
	if version == "" || version == c.EngineVersion {
		if instancePG != "" {
			return nil, badRequest("InvalidParameterCombination", "DBInstanceParameterGroupName is allowed only with a major version upgrade.")
		}
		if clusterPG != "" && clusterPG != c.ParameterGroup {
			if fault := s.groupFits(clusterPG, true, c.Engine, c.EngineVersion); fault != nil {
				return nil, fault
			}
			c.ParameterGroup = clusterPG
			for _, in := range members {
				s.applying(in, true)
			}
		}
		return struct{ DBCluster xCluster }{s.renderCluster(c)}, nil
	}
	major := majorOf(version) != majorOf(c.EngineVersion)
	if major && f.Get("AllowMajorVersionUpgrade") != "true" {
		return nil, badRequest("InvalidParameterCombination", "The AllowMajorVersionUpgrade flag must be present when upgrading to a new major version.")
	}
	if !s.canUpgrade(c.Engine, c.EngineVersion, version) {
		return nil, badRequest("InvalidParameterCombination", "Cannot upgrade "+c.Engine+" from "+c.EngineVersion+" to "+version)
	}
	for _, g := range []struct {
		name    string
		cluster bool
	}{{clusterPG, true}, {instancePG, false}} {
		if g.name == "" {
			continue
		}
		if fault := s.groupFits(g.name, g.cluster, c.Engine, version); fault != nil {
			return nil, fault
		}
	}
	slots := c.LogicalSlots
	if s.Backend.LogicalSlots != nil {
		var err error
		if slots, err = s.Backend.LogicalSlots(id); err != nil {
			return nil, backendFailure(err)
		}
	}
	c.Status = "upgrading"
	for _, in := range members {
		in.Status = "upgrading"
	}
	s.addEvent(id, "db-cluster", "Database cluster engine version upgrade started.")
	if major && slots > 0 {
		// Aurora's precheck runs after the call was accepted: the cluster
		// comes back available at its old version, and an event says why.
		c.t = s.after(func() {
			c.Status = "available"
			for _, in := range members {
				in.Status = "available"
			}
			s.addEvent(id, "db-cluster", "Database cluster is in a state that cannot be upgraded: The instance could not be upgraded because one or more databases have logical replication slots. Please drop all logical replication slots and try again.")
		})
		return struct{ DBCluster xCluster }{s.renderCluster(c)}, nil
	}
	if major && s.Backend.UpgradeCluster != nil {
		if err := s.Backend.UpgradeCluster(id, version); err != nil {
			return nil, backendFailure(err)
		}
	}
	c.t = s.after(func() {
		c.Status, c.EngineVersion = "available", version
		c.ParameterGroup = or(clusterPG, "default."+family(c.Engine, version))
		for _, in := range members {
			in.Status, in.EngineVersion = "available", version
			in.ParameterGroup = instancePG
		}
		s.addEvent(id, "db-cluster", "Database cluster engine major version has been upgraded.")
	})
	return struct{ DBCluster xCluster }{s.renderCluster(c)}, nil
}

func (s *Server) modifyDBInstance(f url.Values) (any, *Fault) {
	id := f.Get("DBInstanceIdentifier")
	in := s.rds.instances[id]
	if in == nil {
		return nil, notFound("DBInstanceNotFound", "DBInstance "+id+" not found.")
	}
	if in.Status != "available" {
		return nil, badRequest("InvalidDBInstanceState", "Instance "+id+" is not currently in the available state.")
	}
	if v := f.Get("EngineVersion"); v != "" && v != in.EngineVersion {
		return nil, badRequest("InvalidParameterCombination", "this stand-in does not upgrade instances with ModifyDBInstance")
	}
	if g := f.Get("DBParameterGroupName"); g != "" && g != s.instanceGroup(in) {
		if fault := s.groupFits(g, false, in.Engine, in.EngineVersion); fault != nil {
			return nil, fault
		}
		in.ParameterGroup = g
		s.applying(in, false)
	}
	if v := f.Get("DeletionProtection"); v != "" {
		in.DeletionProtection = v == "true"
	}
	return struct{ DBInstance xInstance }{s.renderInstance(in)}, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// runeCut moves a byte offset back to the start of a UTF-8 character, so a
// portion never splits one.
func runeCut(s string, i int) int {
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}
