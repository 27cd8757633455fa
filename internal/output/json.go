package output

import "github.com/pilotfish/pilotfish/internal/jsonstr"

// JSONFields are the fields of a job's JSON line between its time and its message
// (Copier.JSON): {"time":…,"job":JOB,"stream":STREAM,"msg":…} (docs/jobs.md#logging).
func JSONFields(job, stream string) []byte {
	b := append([]byte(`","job":`), jsonstr.Append(nil, job, false)...)
	b = append(b, `,"stream":`...)
	b = jsonstr.Append(b, stream, false)
	return append(b, `,"msg":`...)
}
