//go:build !(linux && (amd64 || arm64))

package reaper

// sigchldState keeps Go's SIGCHLD handler where the layout of struct sigaction is not known
// here: the loop is right either way, it only wakes more often.
type sigchldState struct{}

func (s *sigchldState) init()      {}
func (s *sigchldState) set(_ bool) {}
