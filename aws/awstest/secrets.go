package awstest

import (
	"sort"
)

// Secrets Manager's versions and staging labels, as the API reference
// describes them: PutSecretValue makes a new version AWSCURRENT and moves
// AWSPREVIOUS to the version that was current; UpdateSecretVersionStage
// moves a label, refusing unless RemoveFromVersionId names the version that
// has it, and moving AWSCURRENT puts AWSPREVIOUS on the version it left.

type secretVersion struct {
	id, value string
	stages    map[string]bool
}

type secret struct {
	name, arn string
	versions  []*secretVersion // in creation order
}

// AddSecret seeds a Secrets Manager secret (one version, AWSCURRENT) and
// returns its ARN.
func (s *Server) AddSecret(name, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := &secret{name: name, arn: "arn:aws:secretsmanager:" + Region + ":" + Account + ":secret:" + name + "-AbCdEf"}
	sec.versions = []*secretVersion{{id: "v-" + s.newID(), value: value, stages: map[string]bool{"AWSCURRENT": true}}}
	s.secrets[name] = sec
	return sec.arn
}

// SecretValue reports a secret's current (AWSCURRENT) value.
func (s *Server) SecretValue(nameOrARN string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secret(nameOrARN)
	if sec == nil {
		return "", false
	}
	return sec.staged("AWSCURRENT").value, true
}

// SecretStages reports which version holds each staging label of a
// secret ("AWSCURRENT" -> version ID).
func (s *Server) SecretStages(nameOrARN string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	if sec := s.secret(nameOrARN); sec != nil {
		for _, v := range sec.versions {
			for st := range v.stages {
				out[st] = v.id
			}
		}
	}
	return out
}

// SecretVersionCount reports how many versions a secret has.
func (s *Server) SecretVersionCount(nameOrARN string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sec := s.secret(nameOrARN); sec != nil {
		return len(sec.versions)
	}
	return 0
}

func (s *Server) secret(id string) *secret {
	if sec := s.secrets[id]; sec != nil {
		return sec
	}
	for _, sec := range s.secrets {
		if sec.arn == id {
			return sec
		}
	}
	return nil
}

func (sec *secret) staged(stage string) *secretVersion {
	for _, v := range sec.versions {
		if v.stages[stage] {
			return v
		}
	}
	return nil
}

func (sec *secret) version(id string) *secretVersion {
	for _, v := range sec.versions {
		if v.id == id {
			return v
		}
	}
	return nil
}

func (sec *secret) move(stage string, to *secretVersion) {
	for _, v := range sec.versions {
		delete(v.stages, stage)
	}
	if to != nil {
		to.stages[stage] = true
	}
}

func notFoundSecret() *Fault {
	return &Fault{Code: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret.", Status: 400}
}

func invalidParam(msg string) *Fault {
	return &Fault{Code: "InvalidParameterException", Message: msg, Status: 400}
}

func stagesOf(v *secretVersion) []string {
	out := make([]string, 0, len(v.stages))
	for st := range v.stages {
		out = append(out, st)
	}
	sort.Strings(out)
	return out
}

func (s *Server) putSecretValue(p map[string]string) (any, *Fault) {
	sec := s.secret(p["SecretId"])
	if sec == nil {
		return nil, notFoundSecret()
	}
	value, ok := p["SecretString"]
	if !ok {
		return nil, invalidParam("You must provide either SecretString or SecretBinary.")
	}
	token := p["ClientRequestToken"]
	if v := sec.version(token); token != "" && v != nil {
		// The SDK's idempotency token: a retry of the same request.
		if v.value != value {
			return nil, &Fault{Code: "ResourceExistsException", Message: "A version with this ClientRequestToken already exists with another value.", Status: 400}
		}
		return map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": v.id, "VersionStages": stagesOf(v)}, nil
	}
	v := &secretVersion{id: or(token, "v-"+s.newID()), value: value, stages: map[string]bool{}}
	sec.versions = append(sec.versions, v)
	if old := sec.staged("AWSCURRENT"); old != nil {
		sec.move("AWSPREVIOUS", old)
	}
	sec.move("AWSCURRENT", v)
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": v.id, "VersionStages": stagesOf(v)}, nil
}

func (s *Server) getSecretValue(p map[string]string) (any, *Fault) {
	sec := s.secret(p["SecretId"])
	if sec == nil {
		return nil, notFoundSecret()
	}
	var v *secretVersion
	switch {
	case p["VersionId"] != "":
		v = sec.version(p["VersionId"])
		if v != nil && p["VersionStage"] != "" && !v.stages[p["VersionStage"]] {
			v = nil
		}
	default:
		v = sec.staged(or(p["VersionStage"], "AWSCURRENT"))
	}
	if v == nil {
		return nil, &Fault{Code: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret value for VersionId: " + p["VersionId"] + " VersionStage: " + p["VersionStage"], Status: 400}
	}
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "SecretString": v.value, "VersionId": v.id,
		"VersionStages": stagesOf(v), "CreatedDate": 1.7044488e9}, nil
}

func (s *Server) updateSecretVersionStage(p map[string]string) (any, *Fault) {
	sec := s.secret(p["SecretId"])
	if sec == nil {
		return nil, notFoundSecret()
	}
	stage := p["VersionStage"]
	if stage == "" {
		return nil, invalidParam("VersionStage is required.")
	}
	var to *secretVersion
	if id := p["MoveToVersionId"]; id != "" {
		if to = sec.version(id); to == nil {
			return nil, invalidParam("MoveToVersionId " + id + " is not a version of the secret.")
		}
	}
	has := sec.staged(stage)
	if has != nil && has != to && p["RemoveFromVersionId"] != has.id {
		return nil, invalidParam("The parameter RemoveFromVersionId can't be empty. Staging label " + stage + " is currently attached to version " +
			has.id + ", so you must explicitly reference that version in RemoveFromVersionId.")
	}
	if to == nil && stage == "AWSCURRENT" {
		return nil, invalidParam("AWSCURRENT can only be moved to another version, not removed.")
	}
	sec.move(stage, to)
	if stage == "AWSCURRENT" && has != nil && has != to {
		sec.move("AWSPREVIOUS", has)
	}
	return map[string]any{"ARN": sec.arn, "Name": sec.name}, nil
}

func (s *Server) describeSecret(p map[string]string) (any, *Fault) {
	sec := s.secret(p["SecretId"])
	if sec == nil {
		return nil, notFoundSecret()
	}
	stages := map[string][]string{}
	for _, v := range sec.versions {
		stages[v.id] = stagesOf(v)
	}
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionIdsToStages": stages}, nil
}
