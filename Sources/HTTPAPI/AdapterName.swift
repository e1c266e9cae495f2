// Adapter names end up in file names and URL paths, so they are checked once, here:
// `[A-Za-z0-9._-]{1,64}`, and never `.` or `..`.

public enum AdapterName {
  public static let maxLength = 64

  public static func isValid(_ name: String) -> Bool {
    let bytes = Array(name.utf8)
    guard (1...maxLength).contains(bytes.count), name != ".", name != ".." else { return false }
    return bytes.allSatisfy { b in
      (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        || b == 0x2E || b == 0x5F || b == 0x2D
    }
  }

  static func validate(_ name: String, field: String) throws(APIError) {
    guard isValid(name) else {
      throw .invalidField(field, "adapter names are 1 to \(maxLength) characters of A-Z a-z 0-9 . _ - and not '.' or '..'")
    }
  }
}
