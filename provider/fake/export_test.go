package fake

// HolderPID returns the pid of the process holding the server's mount
// namespace, 0 when there is none (for tests).
func HolderPID(s *Server) int {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	if s.holder == nil {
		return 0
	}
	return s.holder.cmd.Process.Pid
}
