// Per-request adapter scale and the chat template switch, as the routes read them: droplorad's
// `adapter_scale`, llama-server's `lora: [{id, scale}]` with ids from `GET /lora-adapters`,
// `chat_template_kwargs.enable_thinking`, and a 400 naming the field for each thing refused.
// What the engine does with them is EngineTests' and AdaptersTests' job.
import Foundation
import HTTPAPI
import Testing

@Suite struct AdapterScaleRouteTests {
  static let twoAdapters = [
    AdapterInfo(name: "math", rank: 8, alpha: 16, targets: ["q", "v"], isDefault: true),
    AdapterInfo(name: "alpha", rank: 4, alpha: 8, targets: ["q"]),
  ]

  func chat(_ path: String, _ extra: String) async throws -> HTTPResponse {
    try await request(
      path, "POST", "/v1/chat/completions", json: #"{"messages":[{"role":"user","content":"hi"}]"# + extra + "}")
  }

  func param(_ r: HTTPResponse) throws -> String? {
    (try r.json()["error"] as? [String: Any])?["param"] as? String
  }

  @Test func loraAdaptersListsIdsInLlamaServersShape() async throws {
    let backend = StubBackend()
    backend.update { $0.adapters = Self.twoAdapters }
    try await withServer(backend) { path, _, _ in
      let r = try await request(path, "GET", "/lora-adapters")
      #expect(r.status == 200)
      let list = try #require(try JSONSerialization.jsonObject(with: Data(r.text.utf8)) as? [[String: Any]])
      // Same creation time in the stub: by name. The default adapter is what a request without lora gets.
      #expect(list.map { $0["id"] as? Int } == [0, 1])
      #expect(list.map { $0["path"] as? String } == ["alpha", "math"])
      #expect(list.map { $0["scale"] as? Double } == [0, 1])
      #expect(list.allSatisfy { $0["task_name"] as? String == "" && $0["prompt_prefix"] as? String == "" })
      #expect(try await request(path, "POST", "/lora-adapters", json: "[]").status == 405)
    }
  }

  @Test func adapterScaleReachesTheBackendWithItsField() async throws {
    try await withServer { path, backend, _ in
      let r = try await chat(path, #","model":"math","adapter_scale":0.5"#)
      #expect(r.status == 200)
      #expect(try r.json()["model"] as? String == "math")
      let seen = try #require(backend.snapshot.lastChat)
      #expect(seen.model == "math")
      #expect(seen.adapterScaling == AdapterScaling(scale: 0.5, field: "adapter_scale"))
      let c = try await request(
        path, "POST", "/v1/completions", json: #"{"model":"math","prompt":"x","adapter_scale":-1.5}"#)
      #expect(c.status == 200)
      #expect(backend.snapshot.lastCompletion?.adapterScaling == AdapterScaling(scale: -1.5, field: "adapter_scale"))
    }
  }

  @Test func loraPicksTheAdapterAndItsScale() async throws {
    let backend = StubBackend()
    backend.update { $0.adapters = Self.twoAdapters }
    try await withServer(backend) { path, backend, _ in
      // The SDKs need a model: the base id or the enabled adapter's name go with lora.
      var r = try await chat(path, #","model":"smollm2-135m","lora":[{"id":0,"scale":0},{"id":1,"scale":0.25}]"#)
      #expect(r.status == 200)
      #expect(try r.json()["model"] as? String == "math")
      var seen = try #require(backend.snapshot.lastChat)
      #expect(seen.model == "math")
      #expect(seen.adapterScaling == AdapterScaling(scale: 0.25, field: "lora[1].scale"))
      #expect(seen.lora == nil)
      // Every listed adapter at 0 (as llama-server: unlisted ones are off too): the base model.
      r = try await chat(path, #","model":"math","lora":[{"id":1,"scale":0}]"#)
      #expect(r.status == 200)
      seen = try #require(backend.snapshot.lastChat)
      #expect(seen.model == "smollm2-135m")
      #expect(seen.adapterScaling == nil)
      // An empty list changes nothing (llama-server: the server's own adapter scales).
      r = try await chat(path, #","model":"alpha","lora":[]"#)
      #expect(r.status == 200)
      #expect(backend.snapshot.lastChat?.model == "alpha")
      #expect(backend.snapshot.lastChat?.adapterScaling == nil)
      let c = try await request(
        path, "POST", "/v1/completions", json: #"{"prompt":"x","lora":[{"id":0,"scale":2}]}"#)
      #expect(c.status == 200)
      #expect(backend.snapshot.lastCompletion?.model == "alpha")
      #expect(backend.snapshot.lastCompletion?.adapterScaling == AdapterScaling(scale: 2, field: "lora[0].scale"))
    }
  }

  @Test func refusalsNameTheField() async throws {
    let backend = StubBackend()
    backend.update { $0.adapters = Self.twoAdapters }
    try await withServer(backend) { path, backend, _ in
      let cases: [(String, String)] = [
        (#","lora":[{"id":0,"scale":1},{"id":1,"scale":0.5}]"#, "lora"),
        (#","lora":[{"id":2,"scale":1}]"#, "lora[0].id"),
        (#","lora":[{"id":-1,"scale":1}]"#, "lora[0].id"),
        (#","lora":[{"id":0,"scale":1},{"id":0,"scale":0}]"#, "lora[1].id"),
        (#","lora":[{"id":0,"scale":1,"task":"x"}]"#, "lora[0].task"),
        (#","lora":[{"id":0}]"#, "lora[0].scale"),
        (#","lora":[{"id":0,"scale":"big"}]"#, "lora[0].scale"),
        (#","lora":[{"id":0,"scale":1}],"adapter_scale":1"#, "adapter_scale"),
        (#","model":"math","lora":[{"id":0,"scale":1}]"#, "lora"),
        (#","adapter_scale":"half""#, "adapter_scale"),
        (#","chat_template_kwargs":{"enable_thinking":false,"tools":[]}"#, "chat_template_kwargs.tools"),
        (#","chat_template_kwargs":{"enable_thinking":"no"}"#, "chat_template_kwargs.enable_thinking"),
      ]
      for (extra, field) in cases {
        let r = try await chat(path, extra)
        #expect(r.status == 400, "\(extra)")
        #expect(try param(r) == field, "\(extra): \(r.text)")
      }
      // Mixing says which adapters were switched on and what to do instead.
      let mixed = try await chat(path, #","lora":[{"id":0,"scale":1},{"id":1,"scale":0.5}]"#)
      #expect(mixed.text.contains("lora enables adapters 0 (scale 1.0), 1 (scale 0.5);"), "\(mixed.text)")
      #expect(mixed.text.contains("give the others scale 0 or leave them out"), "\(mixed.text)")
      #expect(backend.snapshot.started == 0, "no refused request reached the backend")
    }
  }

  @Test func enableThinkingReachesTheBackend() async throws {
    try await withServer { path, backend, _ in
      let r = try await chat(path, #","chat_template_kwargs":{"enable_thinking":false}"#)
      #expect(r.status == 200)
      #expect(backend.snapshot.lastChat?.enableThinking == false)
      _ = try await chat(path, #","chat_template_kwargs":{}"#)
      #expect(backend.snapshot.lastChat?.enableThinking == nil)
    }
  }
}
