import Foundation

func fixtureData(_ name: String) throws -> Data {
  guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures")
  else { throw CocoaError(.fileNoSuchFile) }
  return try Data(contentsOf: url)
}
