package awstest

import (
	"sort"
	"strings"
	"time"
)

// Cluster seeds or reports an Aurora cluster of the model.
type Cluster struct {
	ID                 string
	Engine             string // default "aurora-postgresql"
	EngineVersion      string
	Status             string // default "available"
	ParameterGroup     string // DB cluster parameter group
	SubnetGroup        string
	SecurityGroupIDs   []string
	DeletionProtection bool
	LogExports         []string
	// SourceID is the cluster this one was cloned from ("" if seeded).
	SourceID string
	// RestoreType is what RestoreDBClusterToPointInTime was asked for.
	RestoreType string
}

// Instance seeds or reports a DB instance of the model. The first instance
// added to a cluster is its writer.
type Instance struct {
	ID                 string
	ClusterID          string
	Class              string
	Engine             string // default: the cluster's, else "postgres"
	EngineVersion      string
	Status             string // default "available"
	ParameterGroup     string // DB parameter group
	SubnetGroup        string
	SecurityGroupIDs   []string
	MultiAZ            bool
	IAMAuth            bool
	PubliclyAccessible bool
	Writer             bool
	// PendingReboot is true while a parameter change waits for a reboot.
	PendingReboot bool
}

// Snapshot seeds or reports a DB snapshot or DB cluster snapshot.
type Snapshot struct {
	ID            string
	SourceID      string // instance (DB snapshot) or cluster (cluster snapshot)
	Status        string
	Engine        string
	EngineVersion string
}

// ParameterGroup seeds a parameter group. The five logical replication
// parameters exist in every group (at their engine defaults unless Values
// sets them), plus a few ordinary ones so that lists have several pages.
type ParameterGroup struct {
	Name    string
	Cluster bool // a DB cluster parameter group (Aurora)
	Values  map[string]string
}

// LogFile seeds an instance's log file.
type LogFile struct {
	Name        string
	LastWritten time.Time
	Data        string
}

type cluster struct {
	Cluster
	t *transition
}

type instance struct {
	Instance
	pendingCluster bool // cluster parameter group changed, reboot pending
	t              *transition
}

type snapshot struct {
	Snapshot
	cluster bool
	t       *transition
}

type param struct {
	value, applyType, source string
}

type pgroup struct {
	name    string
	cluster bool
	params  map[string]*param
}

type rdsModel struct {
	clusters  map[string]*cluster
	instances map[string]*instance
	order     []string // instance IDs in creation order
	snapshots map[string]*snapshot
	groups    map[string]*pgroup
	logs      map[string][]LogFile
}

func (m *rdsModel) init() {
	m.clusters = map[string]*cluster{}
	m.instances = map[string]*instance{}
	m.snapshots = map[string]*snapshot{}
	m.groups = map[string]*pgroup{}
	m.logs = map[string][]LogFile{}
}

// Defaults of a parameter group: the five runbook parameters as RDS ships
// them (all static: they need a reboot) and some dynamic ones.
var defaultParams = map[string]param{
	"rds.logical_replication":         {"0", "static", "engine-default"},
	"max_replication_slots":           {"20", "static", "engine-default"},
	"max_wal_senders":                 {"20", "static", "engine-default"},
	"max_logical_replication_workers": {"4", "static", "engine-default"},
	"max_worker_processes":            {"8", "static", "engine-default"},
	"log_min_duration_statement":      {"", "dynamic", "engine-default"},
	"log_statement":                   {"", "dynamic", "engine-default"},
	"statement_timeout":               {"", "dynamic", "engine-default"},
	"work_mem":                        {"", "dynamic", "engine-default"},
}

// AddCluster seeds a cluster.
func (s *Server) AddCluster(c Cluster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Engine == "" {
		c.Engine = "aurora-postgresql"
	}
	if c.Status == "" {
		c.Status = "available"
	}
	s.rds.clusters[c.ID] = &cluster{Cluster: c}
}

// AddInstance seeds an instance; in a cluster, the first one is the writer.
func (s *Server) AddInstance(in Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addInstance(in)
}

func (s *Server) addInstance(in Instance) *instance {
	if in.Status == "" {
		in.Status = "available"
	}
	if cl := s.rds.clusters[in.ClusterID]; cl != nil {
		if in.Engine == "" {
			in.Engine = cl.Engine
		}
		if in.EngineVersion == "" {
			in.EngineVersion = cl.EngineVersion
		}
		in.Writer = len(s.members(in.ClusterID)) == 0
	}
	if in.Engine == "" {
		in.Engine = "postgres"
	}
	x := &instance{Instance: in}
	s.rds.instances[in.ID] = x
	s.rds.order = append(s.rds.order, in.ID)
	return x
}

// AddParameterGroup seeds a parameter group.
func (s *Server) AddParameterGroup(g ParameterGroup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pg := &pgroup{name: g.Name, cluster: g.Cluster, params: map[string]*param{}}
	for n, p := range defaultParams {
		p := p
		pg.params[n] = &p
	}
	for n, v := range g.Values {
		if p := pg.params[n]; p != nil {
			p.value, p.source = v, "user"
		} else {
			pg.params[n] = &param{value: v, applyType: "dynamic", source: "user"}
		}
	}
	s.rds.groups[g.Name] = pg
}

// AddLogFile seeds a log file of an instance.
func (s *Server) AddLogFile(instanceID string, f LogFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rds.logs[instanceID] = append(s.rds.logs[instanceID], f)
}

// AddSnapshot seeds a DB snapshot (cluster=false) or DB cluster snapshot.
func (s *Server) AddSnapshot(sn Snapshot, cluster bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn.Status == "" {
		sn.Status = "available"
	}
	s.rds.snapshots[snapKey(sn.ID, cluster)] = &snapshot{Snapshot: sn, cluster: cluster}
}

// GetCluster reports a cluster as the model holds it now.
func (s *Server) GetCluster(id string) (Cluster, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.rds.clusters[id]
	if c == nil {
		return Cluster{}, false
	}
	return c.Cluster, true
}

// GetInstance reports an instance as the model holds it now.
func (s *Server) GetInstance(id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.rds.instances[id]
	if in == nil {
		return Instance{}, false
	}
	out := in.Instance
	out.PendingReboot = in.PendingReboot || in.pendingCluster
	return out, true
}

// GetSnapshot reports a DB snapshot (cluster=false) or DB cluster snapshot.
func (s *Server) GetSnapshot(id string, cluster bool) (Snapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := s.rds.snapshots[snapKey(id, cluster)]
	if sn == nil {
		return Snapshot{}, false
	}
	return sn.Snapshot, true
}

// GetParameters reports a parameter group's values by name.
func (s *Server) GetParameters(group string) (map[string]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.rds.groups[group]
	if g == nil {
		return nil, false
	}
	out := map[string]string{}
	for n, p := range g.params {
		out[n] = p.value
	}
	return out, true
}

func snapKey(id string, cluster bool) string {
	if cluster {
		return "cluster/" + id
	}
	return "db/" + id
}

// members returns a cluster's instances in creation order.
func (s *Server) members(clusterID string) []*instance {
	var out []*instance
	for _, id := range s.rds.order {
		if in := s.rds.instances[id]; in != nil && in.ClusterID == clusterID {
			out = append(out, in)
		}
	}
	return out
}

func clusterEndpoint(id string) string {
	return id + ".cluster-cfake0000000." + Region + ".rds.amazonaws.com"
}

func clusterReaderEndpoint(id string) string {
	return id + ".cluster-ro-cfake0000000." + Region + ".rds.amazonaws.com"
}

func instanceEndpoint(id string) string {
	return id + ".cfake0000000." + Region + ".rds.amazonaws.com"
}

func arn(kind, id string) string {
	return "arn:aws:rds:" + Region + ":" + Account + ":" + kind + ":" + id
}

// markPending records that a parameter group's change waits for a reboot of
// every instance using it.
func (s *Server) markPending(group string, cluster bool) {
	for _, in := range s.rds.instances {
		if cluster {
			if cl := s.rds.clusters[in.ClusterID]; cl != nil && cl.ParameterGroup == group {
				in.pendingCluster = true
			}
		} else if in.ParameterGroup == group {
			in.PendingReboot = true
		}
	}
}

// sortedParams lists a group's parameter names in order, for stable pages.
func sortedParams(g *pgroup) []string {
	names := make([]string, 0, len(g.params))
	for n := range g.params {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// majorOf is the major version of an engine version ("15.4" -> "15").
func majorOf(v string) string {
	major, _, _ := strings.Cut(v, ".")
	return major
}
