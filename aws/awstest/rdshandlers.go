package awstest

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"unicode/utf8"
)

type rdsHandler func(s *Server, f url.Values) (any, *Fault)

var rdsHandlers map[string]rdsHandler

func init() {
	rdsHandlers = map[string]rdsHandler{
		"DescribeDBClusters":              (*Server).describeDBClusters,
		"DescribeDBInstances":             (*Server).describeDBInstances,
		"DescribeDBClusterParameters":     func(s *Server, f url.Values) (any, *Fault) { return s.describeParameters(f, true) },
		"DescribeDBParameters":            func(s *Server, f url.Values) (any, *Fault) { return s.describeParameters(f, false) },
		"ModifyDBClusterParameterGroup":   func(s *Server, f url.Values) (any, *Fault) { return s.modifyParameterGroup(f, true) },
		"ModifyDBParameterGroup":          func(s *Server, f url.Values) (any, *Fault) { return s.modifyParameterGroup(f, false) },
		"RebootDBInstance":                (*Server).rebootDBInstance,
		"RestoreDBClusterToPointInTime":   (*Server).restoreDBClusterToPointInTime,
		"CreateDBInstance":                (*Server).createDBInstance,
		"ModifyDBCluster":                 (*Server).modifyDBCluster,
		"CreateDBSnapshot":                func(s *Server, f url.Values) (any, *Fault) { return s.createSnapshot(f, false) },
		"CreateDBClusterSnapshot":         func(s *Server, f url.Values) (any, *Fault) { return s.createSnapshot(f, true) },
		"DescribeDBSnapshots":             func(s *Server, f url.Values) (any, *Fault) { return s.describeSnapshots(f, false) },
		"DescribeDBClusterSnapshots":      func(s *Server, f url.Values) (any, *Fault) { return s.describeSnapshots(f, true) },
		"ModifyDBSnapshot":                (*Server).modifyDBSnapshot,
		"RestoreDBInstanceFromDBSnapshot": (*Server).restoreDBInstanceFromDBSnapshot,
		"DescribeDBLogFiles":              (*Server).describeDBLogFiles,
		"DownloadDBLogFilePortion":        (*Server).downloadDBLogFilePortion,
		"DeleteDBCluster":                 (*Server).deleteDBCluster,
		"DeleteDBInstance":                (*Server).deleteDBInstance,
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
		out.DBInstances = append(out.DBInstances, renderInstance(in))
		return out, nil
	}
	for _, id := range s.rds.order {
		if in := s.rds.instances[id]; in != nil {
			out.DBInstances = append(out.DBInstances, renderInstance(in))
		}
	}
	return out, nil
}

func (s *Server) group(f url.Values, cluster bool) (*pgroup, *Fault) {
	key := "DBParameterGroupName"
	if cluster {
		key = "DBClusterParameterGroupName"
	}
	if fault := missing(f, key); fault != nil {
		return nil, fault
	}
	name := f.Get(key)
	g := s.rds.groups[name]
	if g == nil || g.cluster != cluster {
		if cluster {
			return nil, notFound("DBParameterGroupNotFound", "DBClusterParameterGroup not found: "+name)
		}
		return nil, notFound("DBParameterGroupNotFound", "DBParameterGroup not found: "+name)
	}
	return g, nil
}

func (s *Server) describeParameters(f url.Values, cluster bool) (any, *Fault) {
	g, fault := s.group(f, cluster)
	if fault != nil {
		return nil, fault
	}
	names := sortedParams(g)
	start, end, marker := s.page(f, len(names))
	var out struct {
		Parameters []xParameter `xml:"Parameters>Parameter"`
		Marker     string       `xml:",omitempty"`
	}
	for _, n := range names[start:end] {
		p := g.params[n]
		out.Parameters = append(out.Parameters, xParameter{
			ParameterName: n, ParameterValue: p.value, ApplyType: p.applyType,
			Source: p.source, IsModifiable: true, DataType: "string",
		})
	}
	out.Marker = marker
	return out, nil
}

func (s *Server) modifyParameterGroup(f url.Values, cluster bool) (any, *Fault) {
	g, fault := s.group(f, cluster)
	if fault != nil {
		return nil, fault
	}
	type change struct{ name, value, method string }
	var changes []change
	for i := 1; ; i++ {
		pre := "Parameters.Parameter." + strconv.Itoa(i) + "."
		name := f.Get(pre + "ParameterName")
		if name == "" {
			break
		}
		c := change{name, f.Get(pre + "ParameterValue"), f.Get(pre + "ApplyMethod")}
		p := g.params[name]
		if p == nil {
			return nil, badRequest("InvalidParameterValue", "Could not find parameter with name: "+name)
		}
		if c.method == "immediate" && p.applyType == "static" {
			return nil, badRequest("InvalidParameterCombination", "cannot use immediate apply method for static parameter")
		}
		if c.method != "immediate" && c.method != "pending-reboot" {
			return nil, badRequest("InvalidParameterValue", "ApplyMethod must be immediate or pending-reboot")
		}
		changes = append(changes, c)
	}
	if len(changes) == 0 || len(changes) > 20 {
		return nil, badRequest("InvalidParameterValue", "Parameters must hold 1 to 20 parameters")
	}
	pending := false
	for _, c := range changes {
		p := g.params[c.name]
		p.value, p.source = c.value, "user"
		pending = pending || c.method == "pending-reboot"
	}
	if pending {
		s.markPending(g.name, cluster)
	}
	if cluster {
		return struct{ DBClusterParameterGroupName string }{g.name}, nil
	}
	return struct{ DBParameterGroupName string }{g.name}, nil
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
	in.t = s.after(func() { in.Status, in.PendingReboot, in.pendingCluster = "available", false, false })
	return struct{ DBInstance xInstance }{renderInstance(in)}, nil
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
	c := &cluster{Cluster: Cluster{
		ID: id, Engine: source.Engine, EngineVersion: source.EngineVersion, Status: "creating",
		ParameterGroup:     or(f.Get("DBClusterParameterGroupName"), "default."+source.Engine+majorOf(source.EngineVersion)),
		SubnetGroup:        or(f.Get("DBSubnetGroupName"), "default"),
		SecurityGroupIDs:   list(f, "VpcSecurityGroupIds.VpcSecurityGroupId"),
		DeletionProtection: f.Get("DeletionProtection") == "true",
		LogExports:         list(f, "EnableCloudwatchLogsExports.member"),
		SourceID:           src,
		RestoreType:        or(f.Get("RestoreType"), "full-copy"),
	}}
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
	}
	in := s.addInstance(Instance{
		ID: id, ClusterID: clusterID, Class: f.Get("DBInstanceClass"), Engine: f.Get("Engine"),
		EngineVersion: f.Get("EngineVersion"), Status: "creating",
		ParameterGroup: f.Get("DBParameterGroupName"), SubnetGroup: f.Get("DBSubnetGroupName"),
		SecurityGroupIDs: list(f, "VpcSecurityGroupIds.VpcSecurityGroupId"),
		MultiAZ:          f.Get("MultiAZ") == "true", PubliclyAccessible: f.Get("PubliclyAccessible") == "true",
	})
	in.t = s.after(func() { in.Status = "available" })
	return struct{ DBInstance xInstance }{renderInstance(in)}, nil
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
	version := f.Get("EngineVersion")
	if version != "" && majorOf(version) != majorOf(c.EngineVersion) && f.Get("AllowMajorVersionUpgrade") != "true" {
		return nil, badRequest("InvalidParameterCombination", "The AllowMajorVersionUpgrade flag must be present when upgrading to a new major version.")
	}
	clusterPG, instancePG := f.Get("DBClusterParameterGroupName"), f.Get("DBInstanceParameterGroupName")
	if version == "" {
		if clusterPG != "" {
			c.ParameterGroup = clusterPG
		}
		return struct{ DBCluster xCluster }{s.renderCluster(c)}, nil
	}
	c.Status = "upgrading"
	members := s.members(id)
	for _, in := range members {
		in.Status = "upgrading"
	}
	c.t = s.after(func() {
		c.Status, c.EngineVersion = "available", version
		if clusterPG != "" {
			c.ParameterGroup = clusterPG
		}
		for _, in := range members {
			in.Status, in.EngineVersion = "available", version
			if instancePG != "" {
				in.ParameterGroup = instancePG
			}
		}
	})
	return struct{ DBCluster xCluster }{s.renderCluster(c)}, nil
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
