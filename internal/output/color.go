package output

import "fmt"

var colorCodes = map[string]int{
	"black": 30, "red": 31, "green": 32, "yellow": 33, "blue": 34, "magenta": 35, "cyan": 36, "white": 37,
	"bright-black": 90, "bright-red": 91, "bright-green": 92, "bright-yellow": 93,
	"bright-blue": 94, "bright-magenta": 95, "bright-cyan": 96, "bright-white": 97,
}

// palette is what "auto" cycles through, in job order.
var palette = []string{"cyan", "green", "yellow", "magenta", "blue", "bright-red", "bright-green", "bright-cyan"}

// Prefix builds "[name] ", coloured when color names a colour ("auto" picks one by index
// and only on a terminal; "never" never colours).
func Prefix(name, color string, index int, tty bool) []byte {
	if color == "auto" {
		if !tty {
			color = "never"
		} else {
			color = palette[index%len(palette)]
		}
	}
	code, ok := colorCodes[color]
	if !ok {
		return []byte(fmt.Sprintf("[%s] ", name))
	}
	return []byte(fmt.Sprintf("\x1b[%dm[%s]\x1b[0m ", code, name))
}
