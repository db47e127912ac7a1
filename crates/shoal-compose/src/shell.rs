//! Splits a `command:`/`entrypoint:` string into words the way a POSIX shell would (quotes and
//! backslashes, no expansion), as Docker does for the string form.

pub fn split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(o) => cur.push(o),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(o) => cur.push(o),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('\\' | '"' | '$' | '`')) => cur.push(e),
                            Some('\n') => {}
                            Some(o) => {
                                cur.push('\\');
                                cur.push(o);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(o) => cur.push(o),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            o => {
                in_word = true;
                cur.push(o);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            split("httpd -f -p 80 -h /www").expect("splits"),
            ["httpd", "-f", "-p", "80", "-h", "/www"]
        );
        assert_eq!(
            split(r#"sh -c 'while true; do wget -qO- http://web/; sleep 2; done'"#)
                .expect("splits"),
            [
                "sh",
                "-c",
                "while true; do wget -qO- http://web/; sleep 2; done"
            ]
        );
        assert_eq!(
            split(r#"echo "a \"b\" $x" c\ d ''"#).expect("splits"),
            ["echo", "a \"b\" $x", "c d", ""]
        );
        assert!(split("echo 'oops").is_err());
        assert!(split("echo \"oops").is_err());
        assert_eq!(split("   ").expect("splits"), Vec::<String>::new());
    }
}
