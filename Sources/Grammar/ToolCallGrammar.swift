// The grammar of a tool-calling answer: one call (or, with parallel calls, one or more) in
// ToolCallSyntax's `<tool_call>` form, each naming one of the
// offered functions with arguments valid under that function's parameter schema. Used when the
// client requires a call (`tool_choice: "required"` or a named function).

public enum ToolCallGrammar {
  /// A grammar for one call of any of `functions` (or several, separated by newlines, when
  /// `parallel`). Errors name the function's index in `functions` through `index`.
  public static func grammar(functions: [ToolCallSyntax.Function], parallel: Bool) throws(ToolSchemaError) -> Grammar {
    var builder = GrammarBuilder()
    var counter = 0
    var calls: [GrammarExpression] = []
    do {
      var common = SchemaCompilation(root: .object([]))
      try common.defineCommon()
      builder = common.builder
    } catch {
      preconditionFailure("the fixed JSON rules failed to build: \(error)")
    }
    for (i, f) in functions.enumerated() {
      var compilation = SchemaCompilation(root: f.parameters)
      compilation.builder = builder
      compilation.counter = counter
      let arguments: GrammarExpression
      do {
        arguments = try compilation.expression(f.parameters, path: "")
      } catch {
        throw ToolSchemaError(index: i, error: error)
      }
      builder = compilation.builder
      counter = compilation.counter
      calls.append(
        .sequence([
          .text(ToolCallSyntax.open + "{\"name\": " + JSONValue.quote(f.name) + ", \"arguments\": "), arguments, .text("}" + ToolCallSyntax.close),
        ]))
    }
    do {
      try builder.define("call", .choice(calls))
      let call = SchemaCompilation.ref("call")
      try builder.define("root", parallel ? .sequence([call, .repeated(.sequence([.text("\n"), call]), min: 0, max: nil)]) : call)
      return try builder.build(root: "root")
    } catch {
      throw ToolSchemaError(index: nil, error: .grammar(error))
    }
  }
}

/// A tool's parameter schema that cannot be compiled; `index` is the function's position.
public struct ToolSchemaError: Error, Sendable, Equatable {
  public var index: Int?
  public var error: JSONSchemaError
  public init(index: Int?, error: JSONSchemaError) {
    self.index = index
    self.error = error
  }
}
