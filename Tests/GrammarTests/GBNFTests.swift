// GBNF parsing and matching on hand-written grammars: syntax errors name line and column,
// and the matcher accepts exactly the strings each grammar describes.
import Testing

import Grammar

struct GBNFTests {
  func grammar(_ text: String) throws -> GrammarMatcher {
    let g = try Grammar(gbnf: text)
    return GrammarMatcher(grammar: g, vocabulary: TokenVocabulary(pieces: [], endTokens: []))
  }

  func check(_ text: String, accepts: [String], rejects: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
    let m = try grammar(text)
    for s in accepts { #expect(m.matches(Array(s.utf8)), "should accept \(s.debugDescription)", sourceLocation: sourceLocation) }
    for s in rejects { #expect(!m.matches(Array(s.utf8)), "should reject \(s.debugDescription)", sourceLocation: sourceLocation) }
  }

  @Test func literalsSequencesAndAlternation() throws {
    try check(
      #"root ::= "ab" ("c" | "de") tail  # comment"# + "\ntail ::= \"!\" | \"\"",
      accepts: ["abc", "abde", "abc!", "abde!"], rejects: ["", "ab", "abd", "abcde", "abc!!", "xabc"])
  }

  @Test func repetitionOperators() throws {
    try check(#"root ::= "a"* "b"+ "c"?"#, accepts: ["b", "aab", "abbbc", "bc"], rejects: ["", "a", "ac", "bcc"])
    try check(#"root ::= "x"{2,4}"#, accepts: ["xx", "xxx", "xxxx"], rejects: ["x", "xxxxx", ""])
    try check(#"root ::= "x"{3}"#, accepts: ["xxx"], rejects: ["xx", "xxxx"])
    try check(#"root ::= "x"{2,} "y""#, accepts: ["xxy", "xxxxxxxy"], rejects: ["xy", "y"])
    try check(#"root ::= ("ab" | "c"){0,2}"#, accepts: ["", "ab", "cab", "cc"], rejects: ["abcab", "a"])
  }

  @Test func characterClasses() throws {
    try check(#"root ::= [a-cx]+"#, accepts: ["abc", "x", "cxa"], rejects: ["d", "", "abd"])
    try check(#"root ::= [^a-z\n]"#, accepts: ["A", "é", "😀", "\t"], rejects: ["a", "q", "\n", "AB"])
    try check(#"root ::= [α-ω]{2}"#, accepts: ["αω", "λμ"], rejects: ["α", "aω", "Ωα"])
    try check(#"root ::= ."#, accepts: ["a", "€", "😀", "\n"], rejects: ["", "ab"])
    // Ranges that cross UTF-8 length boundaries.
    try check(#"root ::= [\x7E-\u0801]"#, accepts: ["~", "\u{7F}", "\u{80}", "ß", "\u{7FF}", "\u{800}", "\u{801}"],
      rejects: ["}", "\u{802}", "あ"])
    try check(#"root ::= [\U0001F600-\U0001F64F]"#, accepts: ["😀", "🙏"], rejects: ["🚀", "a"])
  }

  @Test func escapes() throws {
    try check(#"root ::= "\x41\u00e9\n\t\"\\" [\]\-]"#, accepts: ["Aé\n\t\"\\]", "Aé\n\t\"\\-"], rejects: ["Aé\n\t\"\\a"])
  }

  @Test func multiLineRulesAndRecursion() throws {
    let text = """
      root ::= expr
      expr ::= term (
          ("+" | "-") term
        )*
      term ::= [0-9]+ | "(" expr ")"
      """
    try check(text, accepts: ["1", "1+2", "(1+2)-3", "((4))"], rejects: ["", "1+", "(1", "1)", "+1"])
  }

  @Test func nullableRepetitionsTerminate() throws {
    try check(#"root ::= ("a"?)* "b""#, accepts: ["b", "aab"], rejects: ["a"])
    try check("root ::= (x*)* \"b\"\nx ::= \"a\" | \"\"", accepts: ["b", "aaab"], rejects: [""])
  }

  @Test(arguments: [
    ("root ::= foo", GrammarError.undefinedRule("foo", line: 1, column: 10)),
    ("root ::= \"a\"\nbar ::= [a-", GrammarError.syntax(line: 2, column: 9, message: "unterminated character class")),
    ("root ::= \"abc", GrammarError.syntax(line: 1, column: 10, message: "unterminated string literal")),
    ("root := \"a\"", GrammarError.syntax(line: 1, column: 6, message: "expected '::=' after rule name 'root'")),
    ("root ::= (\"a\" | \"b\"", GrammarError.syntax(line: 1, column: 10, message: "expected ')' to close the group opened")),
    ("root ::= \"\\q\"", GrammarError.syntax(line: 1, column: 11, message: "unknown escape '\\q'")),
    ("root ::= [z-a]", GrammarError.syntax(line: 1, column: 11, message: "character range is reversed")),
    ("root ::= \"a\"{3,1}", GrammarError.syntax(line: 1, column: 13, message: "repetition {3,1} has max below min")),
    ("start ::= \"a\"", GrammarError.missingRoot("root")),
    ("root ::= expr\nexpr ::= expr \"+\" \"1\" | \"1\"", GrammarError.leftRecursion("expr")),
    ("root ::= \"a\"\nroot ::= \"b\"", GrammarError.syntax(line: 2, column: 1, message: "rule 'root' is defined twice")),
    ("root ::= \"a\" )", GrammarError.syntax(line: 1, column: 14, message: "expected end of line after rule 'root'")),
  ])
  func parseErrors(text: String, expected: GrammarError) {
    #expect(throws: expected) { try Grammar(gbnf: text) }
  }
}
