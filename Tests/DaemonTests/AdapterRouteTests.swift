// Adapters through the socket: create, load from the adapters directory (and nothing outside
// it), chat with one by name, make it the default, unload, and find the same set after a
// restart.
import Foundation
import Testing

extension DaemonTests {
  @Suite struct AdapterRoutes {
    func names(_ socket: String) throws -> [String] {
      let list = try curl(socket, "GET", "/v1/adapters").json()
      return (list["data"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
    }

    @Test func createLoadChatDefaultUnloadAndRestart() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      // Unmerged adapters: a fresh adapter (B = 0) then adds exactly nothing, so its answers equal
      // the base model's bit for bit (a Q8_0 merge re-quantizes q and v, which moves near-ties).
      let unmerged = ["--set", "adapters.merge_type=none"]
      var daemon: DaemonProcess? = try DaemonProcess(arguments: unmerged, directory: directory)
      let socket = daemon!.socketPath

      let created = try curl(socket, "POST", "/v1/adapters", json: #"{"name": "task", "rank": 4, "targets": ["q", "v"], "pruning_rate": 0.3}"#)
      #expect(created.status == 201, "\(created.body)")
      let info = try created.json()
      #expect(info["rank"] as? Int == 4)
      #expect(info["targets"] as? [String] == ["q", "v"])
      #expect(info["pruning_rate"] as? Double == 0.3)
      #expect(FileManager.default.fileExists(atPath: directory + "/adapters/task/adapter_config.json"))
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "task", "rank": 4}"#).status == 409)

      // The saved files load again under another name; paths must stay inside the directory.
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "copy", "path": "task"}"#).status == 201)
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "evil", "path": "../state"}"#).status == 400)
      try FileManager.default.createSymbolicLink(atPath: directory + "/adapters/link", withDestinationPath: "/etc")
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "evil", "path": "link/passwd"}"#).status == 400)
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "../x", "rank": 4}"#).status == 400)
      #expect(try names(socket) == ["copy", "task"])

      // A fresh adapter has B = 0: its answers equal the base model's.
      func answer(_ model: String?) throws -> String {
        let model = model.map { "\"model\": \"\($0)\", " } ?? ""
        let reply = try curl(
          socket, "POST", "/v1/chat/completions",
          json: #"{\#(model)"messages": [{"role": "user", "content": "Name a color."}], "max_tokens": 8, "temperature": 0}"#)
        #expect(reply.status == 200, "\(reply.body)")
        let choices = try reply.json()["choices"] as? [[String: Any]]
        return (choices?.first?["message"] as? [String: Any])?["content"] as? String ?? ""
      }
      let base = try answer("SmolLM2-135M-Instruct.Q4_1")
      let fresh = try answer("task")
      #expect(fresh == base, "fresh adapter: \(fresh) vs base: \(base)")

      #expect(try curl(socket, "POST", "/v1/adapters/task/default").status == 200)
      let models = try curl(socket, "GET", "/v1/models").json()
      #expect((models["data"] as? [[String: Any]])?.count == 3)
      let withDefault = try curl(socket, "POST", "/v1/chat/completions", json: #"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}"#)
      #expect(try withDefault.json()["model"] as? String == "task")
      #expect(try curl(socket, "DELETE", "/v1/adapters/copy").status == 204)
      #expect(try curl(socket, "DELETE", "/v1/adapters/copy").status == 404)
      #expect(try names(socket) == ["task"])

      // After a restart the same adapters are loaded and the default is kept.
      #expect(daemon!.stop() == 0)
      daemon = nil
      let restarted = try DaemonProcess(arguments: unmerged, directory: directory)
      defer { restarted.stop() }
      let list = try curl(restarted.socketPath, "GET", "/v1/adapters").json()
      let entries = list["data"] as? [[String: Any]] ?? []
      #expect(entries.compactMap { $0["name"] as? String } == ["task"])
      #expect(entries.first?["default"] as? Bool == true)
      #expect(entries.first?["pruning_rate"] as? Double == 0.3)
    }
  }
}
