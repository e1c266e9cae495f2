// The JSON coders the client uses for request and response bodies, configured once.
import Foundation

enum JSONCoding {
  static let encoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
    return e
  }()
  static let decoder = JSONDecoder()
}

extension JSONDecoder {
  /// Decodes from raw bytes, as they come off the socket.
  func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
    try decode(type, from: Data(bytes))
  }
}
