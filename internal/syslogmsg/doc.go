// Package syslogmsg parses syslog messages (RFC 3164, including the host-less form that
// glibc's syslog() writes to /dev/log, and RFC 5424), matches them against syslog.conf
// selectors and formats them again (text, RFC 3164, RFC 5424, JSON). Parsing uses
// github.com/leodido/go-syslog/v4; nothing here keeps state.
//
// Who calls it: the syslog kind in package jobs (listeners, outputs, forwarding).
package syslogmsg
