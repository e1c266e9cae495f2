// Writes one HTTP response onto a connection: complete JSON or text bodies, error bodies, and
// server-sent events. Owned by the connection's request task, used by one task at a time.
import Foundation
import NIOCore
import NIOHTTP1

final class ResponseWriter {
  /// The client is gone (or the connection closed under us); nothing more can be written.
  struct Gone: Error {}

  private let outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
  private let version: HTTPVersion
  /// False adds `Connection: close`, after which the connection is closed.
  let keepAlive: Bool
  private(set) var headWritten = false

  init(outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, version: HTTPVersion, keepAlive: Bool) {
    self.outbound = outbound
    self.version = version
    self.keepAlive = keepAlive
  }

  private func send(_ part: HTTPServerResponsePart) async throws(Gone) {
    do { try await outbound.write(part) } catch { throw Gone() }
  }

  private func head(_ status: HTTPResponseStatus, _ extra: HTTPHeaders, contentType: String?, length: Int?)
    async throws(Gone)
  {
    var headers = HTTPHeaders()
    if let contentType { headers.add(name: "Content-Type", value: contentType) }
    if let length { headers.add(name: "Content-Length", value: String(length)) }
    headers.add(contentsOf: extra)
    if !keepAlive { headers.add(name: "Connection", value: "close") }
    headWritten = true
    try await send(.head(HTTPResponseHead(version: version, status: status, headers: headers)))
  }

  func writeFull(status: HTTPResponseStatus, headers: HTTPHeaders = [:], contentType: String?, body: [UInt8])
    async throws(Gone)
  {
    // 204 must carry neither a body nor a length.
    let length: Int? = status == .noContent ? nil : body.count
    try await head(status, headers, contentType: contentType, length: length)
    if !body.isEmpty { try await send(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
    try await send(.end(nil))
  }

  func writeJSON<T: Encodable>(_ value: T, status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:])
    async throws(Gone)
  {
    // Our own response types always encode; a failure here is a programming error reported as 500.
    guard let data = try? Router.jsonEncoder.encode(value) else {
      try await writeError(.internalFailure("could not encode the response"))
      return
    }
    try await writeFull(status: status, headers: headers, contentType: "application/json", body: Array(data))
  }

  func writeError(_ error: APIError) async throws(Gone) {
    let r = error.response
    try await writeJSON(r.body, status: r.status, headers: r.headers)
  }

  // MARK: server-sent events

  func writeSSEHead() async throws(Gone) {
    var h = HTTPHeaders()
    h.add(name: "Cache-Control", value: "no-cache")
    try await head(.ok, h, contentType: "text/event-stream", length: nil)
  }

  /// One `data:` event; JSON never holds a raw newline, so one line is always enough.
  func writeSSE<T: Encodable>(_ value: T) async throws(Gone) {
    guard let data = try? Router.jsonEncoder.encode(value) else { return }
    var buf = ByteBuffer()
    buf.writeString("data: ")
    buf.writeBytes(data)
    buf.writeString("\n\n")
    try await send(.body(.byteBuffer(buf)))
  }

  func writeSSEError(_ body: ErrorBody) async throws(Gone) {
    try await writeSSE(body)
    try await send(.end(nil))
  }

  func writeSSEDone() async throws(Gone) {
    try await send(.body(.byteBuffer(ByteBuffer(string: "data: [DONE]\n\n"))))
    try await send(.end(nil))
  }
}
