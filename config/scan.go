package config

import (
	"bytes"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The scanners measure a file before HCL parses it: how deeply it nests, how many tokens it
// holds and how much text HCL will copy to join the parts of its strings. They never
// recurse and allocate nothing per token.
//
// HCL's parser recurses once or more for every level, so the count must never fall short of
// what the parser does, valid file or not:
//   - where a string, heredoc, comment or ${…} starts and ends follows hclsyntax's lexer
//     exactly (a mistake there would swap code and text);
//   - blocks follow its body parser: a } closes a block only at the start of an item;
//   - after a syntax error (a closing bracket that does not match, a } in the middle of an
//     item, …) HCL's parser recovers in ways the structure no longer tells: no level is
//     given back from there on.
//
// A file with a syntax error may therefore be refused as too deep; checkSource then reports
// HCL's own diagnostic of that first error.

type scanLimit uint8

const (
	overDepth scanLimit = iota
	overTokens
	overCopying
)

type scanError struct {
	offset int
	limit  scanLimit
	broken int // offset of the first syntax error seen before, or -1
}

func (e *scanError) summary() string {
	switch e.limit {
	case overTokens:
		return "Configuration file too long"
	case overCopying:
		return "Strings too long"
	}
	return "Configuration nested too deeply"
}

func (e *scanError) detail(src []byte) string {
	var msg string
	switch e.limit {
	case overTokens:
		msg = fmt.Sprintf("the file holds more than %d tokens (names, numbers, strings, operators, brackets); split it or simplify it", MaxTokens)
	case overCopying:
		msg = fmt.Sprintf("HCL copies a string's text once per line or ${…} in it, and the strings up to here would make it copy more than %d MiB; shorten this string or heredoc", MaxTemplateCopy>>20)
	default:
		msg = fmt.Sprintf("more than %d levels of blocks, brackets, braces, parentheses, ${…}, template if/for or chained operators here", MaxDepth)
		if e.broken >= 0 {
			p := posAt(src, e.broken)
			msg += fmt.Sprintf(", counting those a syntax error at line %d, column %d may leave open; fix that first", p.Line, p.Column)
		}
	}
	return msg + "; see " + limitsDoc
}

// scanBudget is what every scanner of one file adds to.
type scanBudget struct {
	tokens int
	copied int64 // bytes hclsyntax copies to join the literal parts of templates
}

type frameKind uint8

const (
	frameRoot    frameKind = iota // the file: a body
	frameBody                     // a block's body over lines: HCL recurses into it
	frameLine                     // a block's body on its line: { name = value }
	frameObject                   // { … } in an expression
	frameBracket                  // [ … ]: a tuple, a for expression or an index
	frameParen                    // ( … ): a call or a grouping
	frameInterp                   // ${ … } or %{ … } inside a template
	frameQuoted                   // "…": template text with backslash escapes
	frameHeredoc                  // <<EOT … EOT: template text
	frameBare                     // a whole template: the text of a string in HCL JSON
)

func (k frameKind) text() bool  { return k >= frameQuoted }
func (k frameKind) body() bool  { return k <= frameLine }
func (k frameKind) brace() bool { return k <= frameObject || k == frameInterp }

// itemState follows HCL's body parser through one item of a body.
type itemState uint8

const (
	itemStart    itemState = iota // a name starts an item, a } ends the body
	itemName                      // after the name: =, a label or {
	itemLabels                    // block labels, up to {
	itemValue                     // an attribute's value, up to the end of the line
	itemDone                      // after a block's }: the end of the line
	itemSkip                      // a broken item: HCL skips to the end of the line
	itemSkipBody                  // a broken body: HCL skips to its closing brace
)

type frame struct {
	kind    frameKind
	cost    int  // levels this frame adds: 1 for its bracket, plus chain and blocks
	chain   int  // operators and indexes in the current item: each nests the tree once more
	operand bool // the last token ends an operand (a following [ indexes it)
	item    itemState
	values  int // body: tokens of the current value
	// heredoc
	sol    bool // at the start of a line
	marker []byte
	// interp: 0 for ${ }; else the %{ } keyword: 1 opens a template block (if, for),
	// -1 closes one (endif, endfor), 2 neither, 3 not read yet.
	directive int8
	// text: %{ if } and %{ for } left open; and how hclsyntax joins consecutive literal
	// tokens, one at a time, copying the text so far and shifting the parts after it.
	blocks       int
	parts, melds int
	run          int64 // bytes of the current run of literal tokens
	lit          bool  // the last part was a literal
}

type tokKind uint8

const (
	tokSpace tokKind = iota
	tokNewline
	tokComment // /* … */
	tokQuote
	tokHeredoc
	tokOBrace
	tokCBrace
	tokOBrack
	tokCBrack
	tokOParen
	tokCParen
	tokComma
	tokEqual
	tokIdent
	tokNumber
	tokOp    // an operator: nests the tree
	tokPunct // anything else
)

type scanner struct {
	src    []byte
	i      int
	frames []frame
	depth  int // levels open, stuck ones included
	max    int
	budget *scanBudget
	err    *scanError
	broken int // offset of the first syntax error seen, or -1
	// noCommentEnd: no "*/" at or after this offset (an unterminated /* is two operators
	// for HCL; remembering it keeps the scan linear).
	noCommentEnd int
	word         []byte // the last name read
	marker       []byte // the name of the heredoc lex just opened
}

func newScanner(src []byte, kind frameKind, depth int, budget *scanBudget) *scanner {
	s := &scanner{src: src, depth: depth, max: depth, budget: budget, broken: -1, noCommentEnd: -1}
	s.frames = append(make([]frame, 0, 16), frame{kind: kind})
	return s
}

// scanNative measures a file in HCL's native syntax; it returns how deeply it nests.
func scanNative(src []byte) (int, *scanError) {
	s := scanFile(src)
	return s.max, s.err
}

func scanFile(src []byte) *scanner {
	s := newScanner(src, frameRoot, 0, &scanBudget{})
	s.run()
	return s
}

// scanTemplate measures a template given as text (a string of HCL JSON) that starts at
// depth levels.
func scanTemplate(src []byte, depth int, budget *scanBudget) (int, *scanError) {
	s := newScanner(src, frameBare, depth, budget)
	s.run()
	return s.max, s.err
}

func (s *scanner) top() *frame { return &s.frames[len(s.frames)-1] }

func (s *scanner) fail(limit scanLimit, at int) {
	if s.err != nil {
		return
	}
	s.err = &scanError{offset: at, limit: limit, broken: -1}
	if limit == overDepth {
		s.err.broken = s.broken
	}
}

// syntaxError notes a certain syntax error: HCL's parser recovers from it in ways its
// structure no longer tells, so from here on no level is ever given back.
func (s *scanner) syntaxError(at int) {
	if s.broken < 0 {
		s.broken = at
	}
}

func (s *scanner) count() {
	if s.budget.tokens++; s.budget.tokens > MaxTokens {
		s.fail(overTokens, s.i)
	}
}

func (s *scanner) deeper(f *frame, n int, at int) {
	f.cost += n
	s.depth += n
	s.max = max(s.max, s.depth)
	if s.depth > MaxDepth {
		s.fail(overDepth, at)
	}
}

func (s *scanner) push(kind frameKind, at int) *frame {
	s.frames = append(s.frames, frame{kind: kind})
	f := s.top()
	if !kind.text() {
		s.deeper(f, 1, at)
	}
	return f
}

// pop closes the top frame; a stuck one keeps its levels counted, and so does every one
// after a syntax error.
func (s *scanner) pop(stuck bool) {
	f := s.top()
	if f.kind.text() {
		s.endTemplate(f, s.i)
	}
	if !stuck && s.broken < 0 {
		s.depth -= f.cost
	}
	s.frames = s.frames[:len(s.frames)-1]
}

// endItem ends an item of a body, object or list: its operators nest no more.
func (s *scanner) endItem(f *frame) {
	if s.broken < 0 {
		f.cost -= f.chain
		s.depth -= f.chain
	}
	f.chain = 0
	f.operand = false
	f.values = 0
}

func (s *scanner) peek(n int) byte {
	if s.i+n < len(s.src) {
		return s.src[s.i+n]
	}
	return 0
}

func (s *scanner) run() {
	for s.i < len(s.src) && s.err == nil {
		if f := s.top(); f.kind.text() {
			s.text(f)
		} else {
			s.expr(f)
		}
	}
	for i := len(s.frames) - 1; i >= 0 && s.err == nil; i-- {
		if f := &s.frames[i]; f.kind.text() {
			s.endTemplate(f, s.i)
		}
	}
}

// expr reads one token of a body or an expression.
func (s *scanner) expr(f *frame) {
	at := s.i
	tok := s.lex()
	if tok == tokSpace {
		return
	}
	s.count()
	if f.kind.body() {
		s.item(f, tok, at)
	} else {
		s.exprToken(f, tok, at)
	}
}

// item follows HCL's body parser (ParseBody, ParseBodyItem, finishParsingBodyBlock,
// parseSingleAttrBody and their recovery).
func (s *scanner) item(f *frame, tok tokKind, at int) {
	if tok == tokComment {
		return
	}
	switch f.item {
	case itemStart:
		switch tok {
		case tokNewline:
			return
		case tokIdent:
			f.item = itemName
			return
		case tokCBrace:
			if f.kind == frameBody {
				s.pop(s.broken >= 0)
				return
			}
		}
		s.syntaxError(at)
		if f.kind == frameLine {
			f.item = itemSkip // recoverAfterBodyItem
		} else {
			f.item = itemSkipBody // recover(end): to the end of this body
		}
		s.exprToken(f, tok, at)
	case itemName, itemLabels:
		switch {
		case tok == tokEqual && f.item == itemName:
			f.item = itemValue
			f.values = 0
		case (tok == tokQuote || tok == tokIdent) && f.kind != frameLine:
			f.item = itemLabels
			s.exprToken(f, tok, at)
		case tok == tokOBrace && f.kind != frameLine:
			s.openBlock(f, at)
		case tok == tokNewline:
			s.syntaxError(at)
			s.endItem(f)
			f.item = itemStart
			if f.kind == frameLine {
				f.item = itemSkipBody
			}
		default:
			s.syntaxError(at)
			f.item = itemSkip
			s.exprToken(f, tok, at)
		}
	case itemValue:
		switch {
		case tok == tokNewline:
			if !f.operand || f.kind == frameLine {
				s.syntaxError(at) // a value that ends with an operator, or none
			}
			s.endItem(f)
			if f.kind == frameLine {
				f.item = itemSkipBody // recover(TokenCBrace)
			} else {
				f.item = itemStart
			}
		case tok == tokCBrace:
			if f.kind == frameLine {
				// Only a clean one-line block surely ends here: after a syntax error
				// HCL skips the rest of the line, brace included.
				clean := s.broken < 0 && f.operand && f.values > 0
				s.pop(!clean)
				return
			}
			s.midItemBrace(f, at)
		case tok == tokEqual,
			f.operand && (tok == tokIdent || tok == tokNumber || tok == tokQuote || tok == tokHeredoc || tok == tokOBrace):
			s.syntaxError(at) // two values in a row
			f.item = itemSkip
			s.exprToken(f, tok, at)
		default:
			f.values++
			s.exprToken(f, tok, at)
		}
	case itemDone, itemSkip:
		switch tok {
		case tokNewline:
			s.endItem(f)
			f.item = itemStart
			if f.kind == frameLine {
				f.item = itemSkipBody
			}
		case tokCBrace:
			s.midItemBrace(f, at)
		default:
			if f.item == itemDone {
				s.syntaxError(at)
				f.item = itemSkip
			}
			s.exprToken(f, tok, at)
		}
	case itemSkipBody:
		if tok == tokCBrace {
			if f.kind != frameRoot {
				s.pop(true)
			}
			return
		}
		s.exprToken(f, tok, at)
	}
}

// midItemBrace is a } in the middle of an item: HCL's lexer pairs it with the body's {,
// but its parser skips it and stays in the body.
func (s *scanner) midItemBrace(f *frame, at int) {
	s.syntaxError(at)
	if f.kind == frameRoot {
		f.item = itemSkip
		return
	}
	s.pop(true)
	s.top().item = itemSkip
}

// openBlock opens a block's body: over lines (HCL recurses) when a newline, a comment,
// } or the end of the file follows the {, else on one line.
func (s *scanner) openBlock(f *frame, at int) {
	f.item = itemDone
	j := s.i
	for j < len(s.src) {
		switch c := s.src[j]; {
		case c == ' ' || c == '\t':
			j++
			continue
		case c == '\r' && j+1 < len(s.src) && s.src[j+1] == '\n':
			j++
			continue
		case c == '/' && j+1 < len(s.src) && s.src[j+1] == '*':
			if n := bytes.Index(s.src[j+2:], []byte("*/")); n >= 0 {
				j += n + 4
				continue
			}
		}
		break
	}
	kind := frameLine
	if j >= len(s.src) || s.src[j] == '\n' || s.src[j] == '#' || s.src[j] == '}' ||
		s.src[j] == '/' && j+1 < len(s.src) && s.src[j+1] == '/' {
		kind = frameBody
	}
	s.push(kind, at)
}

// exprToken handles a token inside an expression (or a broken item HCL skips: its
// brackets still pair).
func (s *scanner) exprToken(f *frame, tok tokKind, at int) {
	operand := false
	switch tok {
	case tokNewline:
		if f.kind == frameObject {
			s.endItem(f)
		}
		return // newlines inside brackets change nothing
	case tokComment:
		return
	case tokQuote:
		s.push(frameQuoted, at)
		return // an operand once it ends
	case tokHeredoc:
		h := s.push(frameHeredoc, at)
		h.marker, h.sol = s.marker, true
		return // an operand once it ends
	case tokOBrace:
		s.push(frameObject, at)
		return
	case tokCBrace:
		s.closeBrace(at)
		return
	case tokOBrack:
		if f.operand {
			f.chain++ // an index nests the tree
			s.deeper(f, 1, at)
		}
		s.push(frameBracket, at)
		return
	case tokCBrack, tokCParen:
		want := frameBracket
		if tok == tokCParen {
			want = frameParen
		}
		if f.kind != want {
			s.syntaxError(at) // HCL skips it, looking for its own closer
			return
		}
		s.pop(false)
		s.top().operand = true
		return
	case tokOParen:
		s.push(frameParen, at)
		return
	case tokComma:
		s.endItem(f)
		return
	case tokIdent:
		s.keyword(f)
		operand = true
	case tokNumber:
		operand = true
	case tokOp:
		f.chain++
		s.deeper(f, 1, at)
	}
	if f.kind == frameInterp && f.directive == 3 {
		f.directive = 2
	}
	f.operand = operand
}

// closeBrace handles a } in an expression. HCL's lexer pairs it with the innermost { or
// ${, whatever brackets are open inside; the parser may stay in those brackets (and in
// a ${ } they were in), so they stay counted.
func (s *scanner) closeBrace(at int) {
	n := len(s.frames) - 1
	for !s.frames[n].kind.brace() {
		n--
	}
	irregular := n < len(s.frames)-1
	if irregular {
		s.syntaxError(at)
	}
	target := s.frames[n]
	if target.kind.body() {
		// A block's value holds an open bracket: HCL's lexer ends the block here, its
		// parser goes on looking for the bracket's closer.
		for len(s.frames)-1 > n {
			s.pop(true)
		}
		if target.kind == frameRoot {
			return
		}
		s.pop(true)
		s.top().item = itemSkip
		return
	}
	for len(s.frames)-1 > n {
		s.pop(true)
	}
	s.pop(irregular)
	p := s.top()
	if target.kind == frameObject {
		p.operand = true
		return
	}
	s.part(p) // the end of a ${ } or %{ }: one part of the template
	switch target.directive {
	case 1:
		p.blocks++
		s.deeper(p, 1, at)
	case -1:
		if p.blocks > 0 && s.broken < 0 {
			p.blocks--
			p.cost--
			s.depth--
		}
	}
}

// lex reads one token (for a string or a heredoc, its opening) and returns its kind.
func (s *scanner) lex() tokKind {
	c := s.src[s.i]
	switch {
	case c == ' ' || c == '\t':
		s.i++
		return tokSpace
	case c == '\n' || c == '\r' && s.peek(1) == '\n':
		s.i += 1 + boolInt(c == '\r')
		return tokNewline
	case c == '#' || c == '/' && s.peek(1) == '/':
		// A line comment takes its newline: HCL reads it as one.
		if n := bytes.IndexByte(s.src[s.i:], '\n'); n >= 0 {
			s.i += n + 1
		} else {
			s.i = len(s.src)
		}
		return tokNewline
	case c == '/' && s.peek(1) == '*' && (s.noCommentEnd < 0 || s.i < s.noCommentEnd):
		if n := bytes.Index(s.src[s.i+2:], []byte("*/")); n >= 0 {
			s.i += 2 + n + 2
			return tokComment
		}
		s.noCommentEnd = s.i
	case c == '"':
		s.i++
		return tokQuote
	case c == '<' && s.heredoc():
		return tokHeredoc
	case c == '{':
		s.i++
		return tokOBrace
	case c == '}' || c == '~' && s.peek(1) == '}':
		s.i += 1 + boolInt(c == '~')
		return tokCBrace
	case c == '[':
		s.i++
		return tokOBrack
	case c == ']':
		s.i++
		return tokCBrack
	case c == '(':
		s.i++
		return tokOParen
	case c == ')':
		s.i++
		return tokCParen
	case c == ',':
		s.i++
		return tokComma
	case c >= '0' && c <= '9':
		s.number()
		return tokNumber
	case c < utf8.RuneSelf && isIdentStart(rune(c)) || c >= utf8.RuneSelf && s.identStartAt():
		s.word = s.ident()
		return tokIdent
	}
	return s.operator()
}

// operator reads punctuation.
func (s *scanner) operator() tokKind {
	c, d := s.src[s.i], s.peek(1)
	switch {
	case c == '=' && d == '>', c == ':' && d == ':':
		s.i += 2
		return tokPunct
	case c == '=' && d == '=', c == '!' && d == '=', c == '<' && d == '=', c == '>' && d == '=',
		c == '&' && d == '&', c == '|' && d == '|':
		s.i += 2
		return tokOp
	case c == '.' && d == '.' && s.peek(2) == '.':
		s.i += 3
		return tokPunct
	}
	s.i++
	switch c {
	case '+', '-', '*', '/', '%', '<', '>', '!', '?':
		return tokOp
	case '=':
		return tokEqual
	}
	if c >= utf8.RuneSelf {
		_, n := utf8.DecodeRune(s.src[s.i-1:])
		s.i += n - 1
	}
	return tokPunct
}

func (s *scanner) number() {
	// As HCL: digit (digit | . | [eE][+-]?digit)*, not ending with '.'.
	s.i++
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case isDigit(c):
			s.i++
		case c == '.':
			j := s.i + 1
			for j < len(s.src) && s.src[j] == '.' {
				j++
			}
			if j >= len(s.src) || !isDigit(s.src[j]) && s.src[j] != 'e' && s.src[j] != 'E' {
				return
			}
			s.i = j
		case c == 'e' || c == 'E':
			if isDigit(s.peek(1)) {
				s.i += 2
			} else if (s.peek(1) == '+' || s.peek(1) == '-') && isDigit(s.peek(2)) {
				s.i += 3
			} else {
				return
			}
		default:
			return
		}
	}
}

func (s *scanner) identStartAt() bool {
	r, _ := utf8.DecodeRune(s.src[s.i:])
	return r != utf8.RuneError && isIdentStart(r)
}

// ident reads a name (letters, digits, '_' and '-') and returns it.
func (s *scanner) ident() []byte {
	start := s.i
	_, n := utf8.DecodeRune(s.src[s.i:])
	s.i += n
	for s.i < len(s.src) {
		c := s.src[s.i]
		if c < utf8.RuneSelf {
			if !isIdentContinue(rune(c)) {
				break
			}
			s.i++
			continue
		}
		r, n := utf8.DecodeRune(s.src[s.i:])
		if r == utf8.RuneError || !isIdentContinue(r) {
			break
		}
		s.i += n
	}
	return s.src[start:s.i]
}

// keyword notes the keyword of a %{ … } directive.
func (s *scanner) keyword(f *frame) {
	if f.kind != frameInterp || f.directive != 3 {
		return
	}
	switch string(s.word) {
	case "if", "for":
		f.directive = 1
	case "endif", "endfor":
		f.directive = -1
	default:
		f.directive = 2
	}
}

// heredoc starts a heredoc at "<<" when one begins here: "<<" or "<<-", a name, a newline.
func (s *scanner) heredoc() bool {
	if s.peek(1) != '<' {
		return false
	}
	start := s.i + 2
	if start < len(s.src) && s.src[start] == '-' {
		start++
	}
	end := start
	ascii := true
	for end < len(s.src) && s.src[end] != '\n' && s.src[end] != '\r' {
		c := s.src[end]
		if c < utf8.RuneSelf && !isIdentContinue(rune(c)) {
			return false
		}
		ascii = ascii && c < utf8.RuneSelf
		end++
	}
	nl := end
	if nl < len(s.src) && s.src[nl] == '\r' {
		nl++
	}
	if nl >= len(s.src) || s.src[nl] != '\n' || end == start {
		return false
	}
	name := s.src[start:end]
	if ascii {
		if !isIdentStart(rune(name[0])) {
			return false
		}
	} else if !lexesAsHeredoc(s.src[s.i : nl+1]) {
		// Which letters start and continue a name follows HCL's Unicode tables: ask its
		// lexer, on this one line only.
		return false
	}
	s.i = nl + 1
	s.marker = name
	return true
}

func lexesAsHeredoc(line []byte) bool {
	toks, _ := hclsyntax.LexConfig(line, "", hcl.InitialPos)
	return len(toks) > 0 && toks[0].Type == hclsyntax.TokenOHeredoc
}

// text reads one token of template text: a ${ or %{, a lone $ or %, or a run of literal
// text as HCL's lexer makes it (in a heredoc or a bare template, one line).
func (s *scanner) text(f *frame) {
	if f.kind == frameHeredoc && f.sol && s.heredocEnd(f) {
		return
	}
	s.count()
	at := s.i
	c := s.src[s.i]
	switch {
	case (c == '$' || c == '%') && s.peek(1) == '{':
		s.i += 2
		if s.peek(0) == '~' {
			s.i++
		}
		f.sol = false
		f.lit, f.run = false, 0
		in := s.push(frameInterp, at)
		if c == '%' {
			in.directive = 3
		}
		return
	case (c == '$' || c == '%') && s.peek(1) == c && s.peek(2) == '{':
		s.i += 3 // $${ and %%{ are text
		if s.peek(0) == '~' {
			s.i++
		}
	case c == '$' || c == '%':
		s.i++
	case c == '"' && f.kind == frameQuoted:
		s.i++
		s.pop(false)
		s.top().operand = true
		return
	case c == '\n' && f.kind == frameQuoted:
		s.i++
		s.part(f) // an error for HCL, but not text
		return
	default:
		s.literalRun(f)
	}
	f.sol = s.src[s.i-1] == '\n'
	s.literal(f, s.i-at, at)
}

// literalRun reads a run of literal text.
func (s *scanner) literalRun(f *frame) {
	for s.i < len(s.src) {
		switch c := s.src[s.i]; {
		case c == '$' || c == '%': // a token of its own
			return
		case f.kind == frameQuoted && (c == '"' || c == '\n'):
			return
		case f.kind == frameQuoted && c == '\\':
			s.i++
			if n := s.peek(0); n == '\n' || n == '\r' || n == 0 {
				return
			}
			s.i++
		case c == '\n':
			s.i++ // the newline ends the token
			return
		default:
			s.i++
		}
	}
}

// heredocEnd ends a heredoc at a line that holds only its marker, as HCL's lexer does.
func (s *scanner) heredocEnd(f *frame) bool {
	rest := s.src[s.i:]
	n := bytes.IndexByte(rest, '\n')
	if n < 0 {
		return false
	}
	line := rest[:n]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if bytes.ContainsAny(line, "\r$%") || !bytes.Equal(bytes.TrimSpace(rest[:n+1]), f.marker) {
		return false
	}
	s.i += len(line) // the newline ends the attribute, outside the heredoc
	s.count()
	s.pop(false)
	s.top().operand = true
	return true
}

// literal notes a literal token of n bytes of template text.
func (s *scanner) literal(f *frame, n int, at int) {
	f.parts++
	if f.lit {
		f.melds++
		s.copy(f.run, at)
	}
	f.run += int64(n)
	f.lit = true
}

// part notes a part of a template that is not literal text.
func (s *scanner) part(f *frame) {
	f.parts++
	f.lit, f.run = false, 0
}

// endTemplate adds the shifting of the parts: at most parts elements for each join.
func (s *scanner) endTemplate(f *frame, at int) {
	s.copy(16*int64(f.melds)*int64(f.parts), at)
}

func (s *scanner) copy(n int64, at int) {
	if s.budget.copied += n; s.budget.copied > MaxTemplateCopy {
		s.fail(overCopying, at)
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func isIdentStart(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_'
	}
	return unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_ID_Start, r)
}

func isIdentContinue(r rune) bool {
	if r < utf8.RuneSelf {
		return isIdentStart(r) || r >= '0' && r <= '9' || r == '-'
	}
	return isIdentStart(r) || unicode.In(r, unicode.Mn, unicode.Mc, unicode.Nd, unicode.Pc, unicode.Other_ID_Continue)
}
