package awstest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

type secret struct {
	name, arn, value, version string
	versions                  int
}

type ssmParam struct {
	name, value, typ string
	version          int64
}

// AddSecret seeds a Secrets Manager secret and returns its ARN.
func (s *Server) AddSecret(name, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := &secret{name: name, arn: "arn:aws:secretsmanager:" + Region + ":" + Account + ":secret:" + name + "-AbCdEf", value: value, version: "v-" + s.newID(), versions: 1}
	s.secrets[name] = sec
	return sec.arn
}

// SecretValue reports a secret's current value.
func (s *Server) SecretValue(nameOrARN string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secret(nameOrARN)
	if sec == nil {
		return "", false
	}
	return sec.value, true
}

// AddParameter seeds an SSM parameter.
func (s *Server) AddParameter(name, value, typ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.params[name] = &ssmParam{name: name, value: value, typ: or(typ, "String"), version: 1}
}

// ParameterValue reports an SSM parameter's value.
func (s *Server) ParameterValue(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.params[name]
	if p == nil {
		return "", false
	}
	return p.value, true
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

func (s *Server) putSecretValue(p map[string]string) (any, *Fault) {
	sec := s.secret(p["SecretId"])
	if sec == nil {
		return nil, &Fault{Code: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret.", Status: 400}
	}
	if _, ok := p["SecretString"]; !ok {
		return nil, &Fault{Code: "InvalidParameterException", Message: "You must provide either SecretString or SecretBinary.", Status: 400}
	}
	sec.value = p["SecretString"]
	sec.versions++
	sec.version = or(p["ClientRequestToken"], "v-"+s.newID())
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": sec.version, "VersionStages": []string{"AWSCURRENT"}}, nil
}

func (s *Server) getSecretValue(p map[string]string) (any, *Fault) {
	sec := s.secret(p["SecretId"])
	if sec == nil {
		return nil, &Fault{Code: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret.", Status: 400}
	}
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "SecretString": sec.value, "VersionId": sec.version,
		"VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.7044488e9}, nil
}

func (s *Server) putParameter(p map[string]string) (any, *Fault) {
	name := p["Name"]
	if name == "" {
		return nil, &Fault{Code: "ValidationException", Message: "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null", Status: 400}
	}
	cur := s.params[name]
	if cur != nil && p["Overwrite"] != "true" {
		return nil, &Fault{Code: "ParameterAlreadyExists", Message: "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.", Status: 400}
	}
	if cur == nil {
		cur = &ssmParam{name: name}
		s.params[name] = cur
	}
	cur.value, cur.typ = p["Value"], or(p["Type"], or(cur.typ, "String"))
	cur.version++
	return map[string]any{"Version": cur.version, "Tier": "Standard"}, nil
}

func (s *Server) getParameter(p map[string]string) (any, *Fault) {
	cur := s.params[p["Name"]]
	if cur == nil {
		return nil, &Fault{Code: "ParameterNotFound", Message: "", Status: 400}
	}
	return map[string]any{"Parameter": map[string]any{
		"Name": cur.name, "Type": cur.typ, "Value": cur.value, "Version": cur.version, "DataType": "text",
		"ARN": "arn:aws:ssm:" + Region + ":" + Account + ":parameter" + cur.name,
	}}, nil
}

func (s *Server) deleteParameter(p map[string]string) (any, *Fault) {
	if s.params[p["Name"]] == nil {
		return nil, &Fault{Code: "ParameterNotFound", Message: "", Status: 400}
	}
	delete(s.params, p["Name"])
	return map[string]any{}, nil
}
