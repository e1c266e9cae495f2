// Closes a connection that sits idle while the server owes it nothing: no request in progress
// on our side. Covers slow or silent clients (half-sent heads, keep-alive connections left open)
// without ever cutting a long generation that simply hasn't produced output yet.
import NIOCore
import NIOHTTP1

final class IdleConnectionCloser: ChannelDuplexHandler, RemovableChannelHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias InboundOut = HTTPServerRequestPart
  typealias OutboundIn = HTTPServerResponsePart
  typealias OutboundOut = HTTPServerResponsePart

  /// Requests fully received whose response has not ended yet: the server is working.
  private var owed = 0
  /// Told when a whole request has arrived (RequestDeadline stops its clock).
  var onRequestComplete: (() -> Void)?
  var responseOwed: Bool { owed > 0 }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    if case .end = unwrapInboundIn(data) {
      owed += 1
      onRequestComplete?()
    }
    context.fireChannelRead(data)
  }

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    if case .end = unwrapOutboundIn(data) { owed = max(0, owed - 1) }
    context.write(data, promise: promise)
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
      if owed == 0 { context.close(promise: nil) }
      return
    }
    context.fireUserInboundEventTriggered(event)
  }
}
