// StopMatcher: streamed text is released only once it can no longer begin a stop string; the
// output ends right before the earliest stop match, however the text was split into pushes.
// The expectations are computed here from the definition (a naive search over the whole
// text), not from the matcher.
import Engine
import Testing

/// Feeds `pieces` one push at a time; returns what was released and whether (and at which
/// push) a stop matched. Stops pushing after a match, as the generator does.
func run(_ matcher: inout StopMatcher, _ pieces: [String]) -> (text: String, stoppedAt: Int?) {
  var text = ""
  for (i, piece) in pieces.enumerated() {
    let (release, stopped) = matcher.push(piece)
    text += release
    if stopped { return (text, i) }
  }
  return (text, nil)
}

/// The text before the earliest occurrence of any stop, or nil when none occurs.
func prefixBeforeEarliestStop(_ text: String, _ stops: [String]) -> String? {
  let characters = Array(text)
  for start in 0..<max(characters.count, 1) {
    for stop in stops where !stop.isEmpty {
      let s = Array(stop)
      if start + s.count <= characters.count, Array(characters[start..<(start + s.count)]) == s {
        return String(characters[..<start])
      }
    }
  }
  return nil
}

struct StopMatcherTests {
  @Test("without stop strings every push passes through unchanged")
  func noStops() {
    for stops in [[], [""]] as [[String]] {
      var matcher = StopMatcher(stops: stops)
      for piece in ["Hello", ", ", "", "wor", "ld\n", "é🙂"] {
        let (release, stopped) = matcher.push(piece)
        #expect(release == piece)
        #expect(!stopped)
      }
      #expect(matcher.finish() == "")
    }
  }

  @Test("text is held only while it can still be the start of a stop string")
  func holdsPossibleStarts() {
    var matcher = StopMatcher(stops: ["</s>"])
    #expect(matcher.push("Hello <") == ("Hello ", false))
    #expect(matcher.push("/") == ("", false))
    // "</x" can no longer become "</s>": all of it is released.
    #expect(matcher.push("x") == ("</x", false))
    #expect(matcher.push(" done") == (" done", false))
    #expect(matcher.finish() == "")
  }

  @Test("a held tail is released as soon as it stops matching, keeping a later possible start")
  func overlappingStarts() {
    var matcher = StopMatcher(stops: ["abab"])
    #expect(matcher.push("xaba") == ("x", false))
    // "abaa": the last "a" may still start "abab"; "aba" before it may not.
    #expect(matcher.push("a") == ("aba", false))
    #expect(matcher.push("bab") == ("", true))
  }

  @Test("a stop string split across pushes is found; the output ends right before it")
  func splitStop() {
    var matcher = StopMatcher(stops: ["\nUser:"])
    let (text, stoppedAt) = run(&matcher, ["The answer", " is 42.", "\n", "Us", "er", ": more", " text"])
    #expect(text == "The answer is 42.")
    #expect(stoppedAt == 5)
  }

  @Test("text after the stop string in the same push is dropped")
  func dropsAfterStop() {
    var matcher = StopMatcher(stops: ["STOP"])
    #expect(matcher.push("one two STOP three") == ("one two ", true))
  }

  @Test("with several stop strings, the earliest match in the text wins")
  func earliestMatch() {
    // "lo w" starts before "world" although "world" is listed first.
    var whole = StopMatcher(stops: ["world", "lo w"])
    #expect(whole.push("hello world") == ("hel", true))

    var pieces = StopMatcher(stops: ["world", "lo w"])
    #expect(run(&pieces, ["he", "llo", " ", "wor", "ld"]) == ("hel", 3))

    // A longer stop that began earlier but is still incomplete loses to a shorter one that
    // completed: generation ends at the first complete match.
    var nested = StopMatcher(stops: ["abcd", "bc"])
    #expect(run(&nested, ["a", "b", "c", "d"]) == ("a", 2))
  }

  @Test("finish returns the text held back for a possible stop string")
  func finishReturnsHeldText() {
    var matcher = StopMatcher(stops: ["<|end|>"])
    #expect(matcher.push("value <|en") == ("value ", false))
    #expect(matcher.finish() == "<|en")
    #expect(matcher.finish() == "")
  }

  @Test("multi-byte characters in stop strings and text")
  func unicode() {
    var matcher = StopMatcher(stops: ["🙂 bye"])
    #expect(run(&matcher, ["héllo ", "🙂", " b", "ye now"]) == ("héllo ", 3))
    var other = StopMatcher(stops: ["ß"])
    #expect(other.push("straße") == ("stra", true))
  }

  @Test("random texts and splits agree with a naive search over the whole text", arguments: 0..<20)
  func randomSplits(seed: UInt64) {
    var random = SeededRandom(seed: seed)
    let alphabet = Array("abc")
    func randomString(_ length: Int) -> String {
      String((0..<length).map { _ in alphabet[Int(random.next() % 3)] })
    }
    for _ in 0..<50 {
      let stops = (0..<(1 + Int(random.next() % 3))).map { _ in randomString(1 + Int(random.next() % 4)) }
      let text = randomString(Int(random.next() % 25))
      var pieces: [String] = []
      var rest = Substring(text)
      while !rest.isEmpty {
        let n = min(rest.count, 1 + Int(random.next() % 4))
        pieces.append(String(rest.prefix(n)))
        rest = rest.dropFirst(n)
      }

      var matcher = StopMatcher(stops: stops)
      var released = ""
      var received = ""
      var stopped = false
      for piece in pieces {
        received += piece
        let (release, didStop) = matcher.push(piece)
        released += release
        if didStop {
          stopped = true
          break
        }
        // Released text never reaches into a possible start of a stop string, and nothing
        // that can no longer start one is held back.
        #expect(received.hasPrefix(released))
        let held = received.count - released.count
        let longestPossibleStart = stops.map { stop in
          (0..<min(stop.count, received.count + 1)).last { k in stop.hasPrefix(String(received.suffix(k))) } ?? 0
        }.max() ?? 0
        #expect(held == longestPossibleStart, "stops \(stops), received \(received), released \(released)")
      }
      // The stream ends at the first push after which the text so far contains a stop string,
      // right before the earliest occurrence in that text.
      var expected: String?
      var soFar = ""
      for piece in pieces where expected == nil {
        soFar += piece
        expected = prefixBeforeEarliestStop(soFar, stops)
      }
      #expect(stopped == (expected != nil), "stops \(stops), text \(text), pieces \(pieces)")
      if !stopped { released += matcher.finish() }
      #expect(released == (expected ?? text), "stops \(stops), text \(text), pieces \(pieces)")
    }
  }
}
