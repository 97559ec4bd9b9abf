package awstest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

type ssmVersion struct {
	version    int64
	value, typ string
}

type ssmParam struct {
	name    string
	history []ssmVersion // oldest first; the last is the current value
}

func (p *ssmParam) current() ssmVersion { return p.history[len(p.history)-1] }

// AddParameter seeds an SSM parameter (its version 1).
func (s *Server) AddParameter(name, value, typ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.params[name] = &ssmParam{name: name, history: []ssmVersion{{1, value, or(typ, "String")}}}
}

// ParameterValue reports an SSM parameter's current value.
func (s *Server) ParameterValue(name string) (string, bool) {
	v, ok := s.ParameterVersion(name)
	return v.Value, ok
}

// ParameterState is an SSM parameter's current version.
type ParameterState struct {
	Value, Type string
	Version     int64
}

// ParameterVersion reports an SSM parameter's current version.
func (s *Server) ParameterVersion(name string) (ParameterState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.params[name]
	if p == nil {
		return ParameterState{}, false
	}
	c := p.current()
	return ParameterState{Value: c.value, Type: c.typ, Version: c.version}, true
}

// serveJSON answers Secrets Manager ("secretsmanager.Action") and SSM
// ("AmazonSSM.Action"), both AWS JSON 1.1.
func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request, body []byte) {
	target := r.Header.Get("X-Amz-Target")
	prefix, action, _ := strings.Cut(target, ".")
	service := map[string]string{"secretsmanager": "secretsmanager", "AmazonSSM": "ssm"}[prefix]
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		writeJSONError(w, &Fault{Code: "SerializationException", Message: "body is not JSON", Status: 400})
		return
	}
	params := map[string]string{}
	flatten(params, "", in)
	s.mu.Lock()
	defer s.mu.Unlock()
	if fault := s.record(service, action, params); fault != nil {
		writeJSONError(w, fault)
		return
	}
	if r.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
		writeJSONError(w, &Fault{Code: "UnknownOperationException", Message: "bad content type", Status: 400})
		return
	}
	var out any
	var fault *Fault
	switch service + "." + action {
	case "secretsmanager.PutSecretValue":
		out, fault = s.putSecretValue(params)
	case "secretsmanager.GetSecretValue":
		out, fault = s.getSecretValue(params)
	case "secretsmanager.UpdateSecretVersionStage":
		out, fault = s.updateSecretVersionStage(params)
	case "secretsmanager.DescribeSecret":
		out, fault = s.describeSecret(params)
	case "ssm.PutParameter":
		out, fault = s.putParameter(params)
	case "ssm.GetParameter":
		out, fault = s.getParameter(params)
	case "ssm.DeleteParameter":
		out, fault = s.deleteParameter(params)
	default:
		fault = &Fault{Code: "UnknownOperationException", Message: "unknown operation " + target, Status: 400}
	}
	if fault != nil {
		writeJSONError(w, fault)
		return
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", "req-"+s.newID())
	_, _ = w.Write(b)
}

// writeJSONError answers as AWS JSON services do: __type and Message.
func writeJSONError(w http.ResponseWriter, f *Fault) {
	b, _ := json.Marshal(map[string]string{"__type": f.Code, "Message": f.Message})
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", f.Code)
	w.WriteHeader(f.Status)
	_, _ = w.Write(b)
}

// flatten turns nested JSON into dotted keys; lists get 1-based indexes.
func flatten(out map[string]string, prefix string, v any) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			flatten(out, join(k), x[k])
		}
	case []any:
		for i, e := range x {
			flatten(out, join(strconv.Itoa(i+1)), e)
		}
	case string:
		out[prefix] = x
	case nil:
		out[prefix] = ""
	default:
		out[prefix] = fmt.Sprint(x)
	}
}

func (s *Server) putParameter(p map[string]string) (any, *Fault) {
	name := p["Name"]
	if name == "" {
		return nil, &Fault{Code: "ValidationException", Message: "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null", Status: 400}
	}
	if strings.Contains(name, ":") {
		return nil, &Fault{Code: "ValidationException", Message: "Parameter name: can't be prefixed with a version selector", Status: 400}
	}
	cur := s.params[name]
	if cur != nil && p["Overwrite"] != "true" {
		return nil, &Fault{Code: "ParameterAlreadyExists", Message: "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.", Status: 400}
	}
	if cur == nil {
		cur = &ssmParam{name: name}
		s.params[name] = cur
	}
	v := ssmVersion{version: 1, value: p["Value"], typ: or(p["Type"], "String")}
	if len(cur.history) > 0 {
		v.version = cur.current().version + 1
		v.typ = or(p["Type"], cur.current().typ)
	}
	cur.history = append(cur.history, v)
	return map[string]any{"Version": v.version, "Tier": "Standard"}, nil
}

// getParameter answers "name" (the current version) and "name:N" (version
// N of the parameter's history), as SSM's selectors do.
func (s *Server) getParameter(p map[string]string) (any, *Fault) {
	name, sel, hasSel := strings.Cut(p["Name"], ":")
	cur := s.params[name]
	if cur == nil {
		return nil, &Fault{Code: "ParameterNotFound", Message: "", Status: 400}
	}
	v := cur.current()
	if hasSel {
		n, err := strconv.ParseInt(sel, 10, 64)
		if err != nil {
			return nil, &Fault{Code: "ValidationException", Message: "this stand-in knows version selectors only, not labels: " + sel, Status: 400}
		}
		found := false
		for _, h := range cur.history {
			if h.version == n {
				v, found = h, true
			}
		}
		if !found {
			return nil, &Fault{Code: "ParameterVersionNotFound", Message: "Systems Manager could not find version " + sel + " of " + name + ".", Status: 400}
		}
	}
	value := v.value
	if v.typ == "SecureString" && p["WithDecryption"] != "true" {
		value = "AQICAHencrypted" // what SSM returns without decryption: ciphertext
	}
	out := map[string]any{
		"Name": cur.name, "Type": v.typ, "Value": value, "Version": v.version, "DataType": "text",
		"ARN": "arn:aws:ssm:" + Region + ":" + Account + ":parameter" + cur.name,
	}
	if hasSel {
		out["Selector"] = ":" + sel
	}
	return map[string]any{"Parameter": out}, nil
}

func (s *Server) deleteParameter(p map[string]string) (any, *Fault) {
	if s.params[p["Name"]] == nil {
		return nil, &Fault{Code: "ParameterNotFound", Message: "", Status: 400}
	}
	delete(s.params, p["Name"]) // and its history, as SSM does
	return map[string]any{}, nil
}
