//! Image references as the catalogue matches them: the repository's path segments, whatever
//! registry or mirror is in front, and the tag's leading version.

/// The parts of an image reference the catalogue reads; borrowed from the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image<'a> {
    /// The reference without its tag and digest, as written: `registry.corp/mirror/redis`.
    pub name: &'a str,
    /// The repository path without the registry: `mirror/redis`, `library/redis`, `redis`.
    pub path: &'a str,
    pub tag: Option<&'a str>,
}

impl<'a> Image<'a> {
    /// Reads a reference: `[registry/]path[:tag][@digest]`. A first segment with a dot or a
    /// colon, or `localhost`, is a registry, as Docker's reference grammar has it.
    pub fn parse(reference: &'a str) -> Image<'a> {
        // One pass over the bytes: this runs for every container of every review.
        let bytes = reference.as_bytes();
        let end = bytes.iter().position(|b| *b == b'@').unwrap_or(bytes.len());
        let (mut first_slash, mut last_slash, mut colon) = (None, None, None);
        for (at, byte) in bytes[..end].iter().enumerate() {
            match byte {
                b'/' => {
                    first_slash.get_or_insert(at);
                    last_slash = Some(at);
                    // A colon before a slash is a registry's port, not a tag.
                    colon = None;
                }
                b':' => colon = Some(at),
                _ => {}
            }
        }
        let (name, tag) = match colon {
            Some(at) => (&reference[..at], Some(&reference[at + 1..end])),
            None => (&reference[..end], None),
        };
        let path = match first_slash {
            Some(at) if last_slash.is_some() => {
                let first = &bytes[..at];
                let registry =
                    first.contains(&b'.') || first.contains(&b':') || first == b"localhost";
                if registry { &name[at + 1..] } else { name }
            }
            _ => name,
        };
        Image { name, path, tag }
    }

    /// The last segment of the path: the key the catalogue's table is built on.
    pub fn last_segment(&self) -> &'a str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }

    /// Whether the reference ends with `segments` (compared ignoring ASCII case), segment
    /// by segment: `bitnami/redis` ends with `redis` but `bitnami/redis-cluster` does not,
    /// and `registry.corp/team/app` ends with all of itself.
    pub fn ends_with(&self, segments: &str) -> bool {
        let path = self.name.as_bytes();
        let wanted = segments.as_bytes();
        if wanted.len() > path.len() {
            return false;
        }
        let start = path.len() - wanted.len();
        path[start..].eq_ignore_ascii_case(wanted) && (start == 0 || path[start - 1] == b'/')
    }

    /// Whether the reference, as written, starts with `prefix` (which ends with `/`).
    pub fn is_under(&self, prefix: &str) -> bool {
        self.name
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    }

    /// The tag's leading version: `v2.45.0` and `2.45.0-alpine` are 2.45.0; `latest` has none.
    pub fn version(&self) -> Option<Version> {
        Version::parse(self.tag?)
    }
}

/// Up to four numeric components; missing ones compare as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version([u64; 4]);

impl Version {
    /// The leading `[v]N[.N[.N[.N]]]` of `text`; `None` when it does not start with a number.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        let mut parts = [0u64; 4];
        let mut read = 0;
        for part in text.split('.').take(4) {
            let digits = part.len() - part.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                break;
            }
            parts[read] = part[..digits].parse().ok()?;
            read += 1;
            if digits < part.len() {
                break;
            }
        }
        (read > 0).then_some(Version(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        struct Case {
            name: &'static str,
            reference: &'static str,
            path: &'static str,
            tag: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "an official image",
                reference: "redis",
                path: "redis",
                tag: None,
            },
            Case {
                name: "with a tag",
                reference: "redis:7.2-alpine",
                path: "redis",
                tag: Some("7.2-alpine"),
            },
            Case {
                name: "Docker Hub written out",
                reference: "docker.io/library/redis:7",
                path: "library/redis",
                tag: Some("7"),
            },
            Case {
                name: "a mirror with a port",
                reference: "registry.corp:5000/mirror/bitnami/redis:7.2",
                path: "mirror/bitnami/redis",
                tag: Some("7.2"),
            },
            Case {
                name: "a digest",
                reference: "quay.io/prometheus/prometheus@sha256:abcd",
                path: "prometheus/prometheus",
                tag: None,
            },
            Case {
                name: "a tag and a digest",
                reference: "ghcr.io/fluxcd/source-controller:v1.4.1@sha256:abcd",
                path: "fluxcd/source-controller",
                tag: Some("v1.4.1"),
            },
            Case {
                name: "localhost is a registry",
                reference: "localhost/app:1",
                path: "app",
                tag: Some("1"),
            },
            Case {
                name: "a user namespace is no registry",
                reference: "bitnami/postgresql:16",
                path: "bitnami/postgresql",
                tag: Some("16"),
            },
        ];
        for case in cases {
            let image = Image::parse(case.reference);
            assert_eq!(image.path, case.path, "{}", case.name);
            assert_eq!(image.tag, case.tag, "{}", case.name);
        }
    }

    #[test]
    fn suffixes_match_whole_segments() {
        let image = Image::parse("registry.corp:5000/mirror/Bitnami/redis:7");
        assert!(image.ends_with("redis"));
        assert!(image.ends_with("bitnami/redis"), "case is ignored");
        assert!(image.ends_with("mirror/bitnami/redis"));
        assert!(
            image.ends_with("registry.corp:5000/mirror/bitnami/redis"),
            "with the registry"
        );
        assert!(!image.ends_with("is"), "part of a segment");
        assert!(!image.ends_with("other/redis"));
        assert!(!Image::parse("bitnami/redis-cluster").ends_with("redis"));
        assert!(image.is_under("registry.corp:5000/mirror/"));
        assert!(!image.is_under("registry.corp/payments/"));
        assert_eq!(image.last_segment(), "redis");
    }

    #[test]
    fn versions() {
        let v = |s| Version::parse(s);
        assert_eq!(v("v2.45.0"), Some(Version([2, 45, 0, 0])));
        assert_eq!(v("16.2-alpine"), Some(Version([16, 2, 0, 0])));
        assert_eq!(v("7.2.4-debian-12-r0"), Some(Version([7, 2, 4, 0])));
        assert_eq!(v("25"), Some(Version([25, 0, 0, 0])));
        assert_eq!(v("latest"), None);
        assert_eq!(v("alpine"), None);
        assert!(v("25.0.1") > v("25"));
        assert!(v("2.9.9") < v("2.10"));
    }
}
