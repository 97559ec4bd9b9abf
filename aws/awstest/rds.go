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
	// LogicalSlots is how many logical replication slots the writer holds,
	// for Aurora's upgrade precheck (a clone inherits its source's). With a
	// Backend.LogicalSlots the real server is asked instead.
	LogicalSlots int
	// Created is when the cluster was made (ClusterCreateTime).
	Created time.Time
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
	DeletionProtection bool
	Writer             bool
	// PendingReboot is true while a parameter change waits for a reboot
	// (or is still being applied, before it does).
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
// RDS's default groups ("default.<family>") exist without seeding and
// refuse every modification, as RDS's do.
type ParameterGroup struct {
	Name    string
	Cluster bool // a DB cluster parameter group (Aurora)
	// Family is the engine family the group serves ("aurora-postgresql15",
	// "postgres17"). Default: aurora-postgresql15 for a cluster group,
	// postgres15 otherwise.
	Family string
	Values map[string]string
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
	// redo is the `redo done at` of a clone's recovery (Backend), written
	// to the log of its first instance.
	redo string
}

type instance struct {
	Instance
	// apply and clusterApply are the parameter statuses of the instance's
	// DB parameter group and of its cluster's group: "in-sync", "applying"
	// (for a few describes after a change), "pending-reboot".
	apply, clusterApply string
	t                   *transition
	at, cat             *transition // applying -> pending-reboot
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
	name, family string
	cluster      bool
	params       map[string]*param
}

type rdsModel struct {
	clusters  map[string]*cluster
	instances map[string]*instance
	order     []string // instance IDs in creation order
	snapshots map[string]*snapshot
	groups    map[string]*pgroup
	logs      map[string][]LogFile
	events    map[string][]event
	// versions are the engine versions RDS offers, per engine, in order;
	// targets overrides the valid upgrade targets of one engine version.
	versions map[string][]string
	targets  map[string][]string
}

type event struct {
	at      time.Time
	typ     string
	message string
}

func (m *rdsModel) init() {
	m.clusters = map[string]*cluster{}
	m.instances = map[string]*instance{}
	m.snapshots = map[string]*snapshot{}
	m.groups = map[string]*pgroup{}
	m.logs = map[string][]LogFile{}
	m.events = map[string][]event{}
	m.targets = map[string][]string{}
	m.versions = map[string][]string{
		"aurora-postgresql": {"12.9", "12.10", "13.9", "14.6", "15.4", "15.7", "16.4", "16.6", "17.4", "17.5"},
		"postgres":          {"13.9", "14.6", "15.7", "15.8", "16.4", "16.6", "17.4", "17.5"},
	}
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
	if c.Created.IsZero() {
		c.Created = time.Now().UTC()
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
	x := &instance{Instance: in, apply: "in-sync", clusterApply: "in-sync"}
	if in.PendingReboot {
		x.apply = "pending-reboot"
	}
	s.rds.instances[in.ID] = x
	s.rds.order = append(s.rds.order, in.ID)
	return x
}

// AddParameterGroup seeds a parameter group.
func (s *Server) AddParameterGroup(g ParameterGroup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.Family == "" {
		g.Family = "postgres15"
		if g.Cluster {
			g.Family = "aurora-postgresql15"
		}
	}
	pg := newGroup(g.Name, g.Family, g.Cluster)
	for n, v := range g.Values {
		if p := pg.params[n]; p != nil {
			p.value, p.source = v, "user"
		} else {
			pg.params[n] = &param{value: v, applyType: "dynamic", source: "user"}
		}
	}
	s.rds.groups[g.Name] = pg
}

func newGroup(name, family string, cluster bool) *pgroup {
	pg := &pgroup{name: name, family: family, cluster: cluster, params: map[string]*param{}}
	for n, p := range defaultParams {
		p := p
		pg.params[n] = &p
	}
	return pg
}

// lookupGroup finds a parameter group of the kind asked for; RDS's default
// groups ("default.aurora-postgresql15") exist for every family.
func (s *Server) lookupGroup(name string, cluster bool) *pgroup {
	if g := s.rds.groups[name]; g != nil {
		if g.cluster != cluster {
			return nil
		}
		return g
	}
	family, ok := strings.CutPrefix(name, "default.")
	if !ok || !knownFamily(family) {
		return nil
	}
	g := newGroup(name, family, cluster)
	s.rds.groups[name] = g
	return g
}

func knownFamily(f string) bool {
	for _, e := range []string{"aurora-postgresql", "postgres"} {
		if major, ok := strings.CutPrefix(f, e); ok && major != "" && strings.Trim(major, "0123456789") == "" {
			return true
		}
	}
	return false
}

// family is the parameter group family of an engine at a version.
func family(engine, version string) string { return engine + majorOf(version) }

// SetUpgradeTargets replaces the valid upgrade targets RDS lists for one
// engine version (by default every later version it offers).
func (s *Server) SetUpgradeTargets(engine, version string, targets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rds.targets[engine+" "+version] = targets
}

// upgradeTargets are the valid upgrade targets of an engine version.
func (s *Server) upgradeTargets(engine, version string) []string {
	if t, ok := s.rds.targets[engine+" "+version]; ok {
		return t
	}
	vs := s.rds.versions[engine]
	for i, v := range vs {
		if v == version {
			return vs[i+1:]
		}
	}
	return nil
}

func (s *Server) canUpgrade(engine, from, to string) bool {
	for _, t := range s.upgradeTargets(engine, from) {
		if t == to {
			return true
		}
	}
	return false
}

// SetLogicalSlots sets how many logical replication slots a cluster's
// writer holds, for Aurora's upgrade precheck (without a Backend).
func (s *Server) SetLogicalSlots(clusterID string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.rds.clusters[clusterID]; c != nil {
		c.LogicalSlots = n
	}
}

func (s *Server) addEvent(sourceID, typ, message string) {
	s.rds.events[sourceID] = append(s.rds.events[sourceID], event{at: time.Now().UTC(), typ: typ, message: message})
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
	out.PendingReboot = in.apply != "in-sync" || in.clusterApply != "in-sync"
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

// markApplying records that a parameter group's change is being applied to
// every instance using it: "applying" for a few describes, then waiting for
// a reboot, as static parameters do on RDS.
func (s *Server) markApplying(group string, cluster bool) {
	for _, in := range s.rds.instances {
		if cluster {
			if cl := s.rds.clusters[in.ClusterID]; cl != nil && cl.ParameterGroup == group {
				s.applying(in, true)
			}
		} else if s.instanceGroup(in) == group {
			s.applying(in, false)
		}
	}
}

func (s *Server) applying(in *instance, cluster bool) {
	if cluster {
		in.clusterApply = "applying"
		in.cat = s.after(func() { in.clusterApply = "pending-reboot" })
		return
	}
	in.apply = "applying"
	in.at = s.after(func() { in.apply = "pending-reboot" })
}

// instanceGroup is the DB parameter group an instance uses: its own, or
// the engine's default one.
func (s *Server) instanceGroup(in *instance) string {
	return or(in.ParameterGroup, "default."+family(in.Engine, in.EngineVersion))
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
