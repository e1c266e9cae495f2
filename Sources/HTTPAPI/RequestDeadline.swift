// Bounds the time one request may take to arrive. The idle timer restarts on every byte, so a
// client that sends one byte a second would hold its connection (and a place under the caps)
// forever; this clock starts at a request's first byte and stops when the request is complete.
import NIOCore

final class RequestDeadline: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer

  private let timeout: TimeAmount
  private let closer: IdleConnectionCloser
  private var timer: Scheduled<Void>?

  init(timeout: TimeAmount, closer: IdleConnectionCloser) {
    self.timeout = timeout
    self.closer = closer
    closer.onRequestComplete = { [weak self] in self?.stop() }
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    if timer == nil {
      timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
        self?.expire(context)
      }
    }
    context.fireChannelRead(data)
  }

  func handlerRemoved(context: ChannelHandlerContext) { stop() }

  func channelInactive(context: ChannelHandlerContext) {
    stop()
    context.fireChannelInactive()
  }

  private func stop() {
    timer?.cancel()
    timer = nil
  }

  private func expire(_ context: ChannelHandlerContext) {
    timer = nil
    // Answer only when no earlier response is being written on this connection (pipelining);
    // the bytes go straight to the socket, below the HTTP encoder.
    if !closer.responseOwed {
      let seconds = Double(timeout.nanoseconds) / 1e9
      let body = #"{"error":{"message":"request not received within \#(seconds) s (limits.request_timeout_seconds)","type":"invalid_request_error","param":null,"code":"request_timeout"}}"#
      let text = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
      context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: text)), promise: nil)
    }
    context.close(promise: nil)
  }
}
