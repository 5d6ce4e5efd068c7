//! Russian and English (B-12) with Fluent, which knows Russian plural rules (1 запись,
//! 2 записи, 5 записей). The language comes from the `lang` cookie, else the browser's
//! Accept-Language, else Russian.

use axum::http::HeaderMap;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ru,
    En,
}

type Bundle = FluentBundle<FluentResource>;

fn bundle(tag: unic_langid::LanguageIdentifier, source: &str) -> Bundle {
    let resource = FluentResource::try_new(source.to_string()).expect("the locale file parses");
    let mut bundle = FluentBundle::new_concurrent(vec![tag]);
    // No Unicode isolation marks around arguments: the text goes into HTML as it is.
    bundle.set_use_isolating(false);
    bundle
        .add_resource(resource)
        .expect("the locale file has no duplicate messages");
    bundle
}

static RU: LazyLock<Bundle> = LazyLock::new(|| {
    bundle(
        unic_langid::langid!("ru"),
        include_str!("../../locales/ru.ftl"),
    )
});
static EN: LazyLock<Bundle> = LazyLock::new(|| {
    bundle(
        unic_langid::langid!("en"),
        include_str!("../../locales/en.ftl"),
    )
});

pub const LANG_COOKIE: &str = "lang";

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Ru => Lang::En,
            Lang::En => Lang::Ru,
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code.trim().to_ascii_lowercase().get(..2) {
            Some("ru") => Some(Lang::Ru),
            Some("en") => Some(Lang::En),
            _ => None,
        }
    }

    /// The chosen language, else the browser's first known one, else Russian.
    pub fn of_request(headers: &HeaderMap) -> Lang {
        if let Some(lang) =
            super::session::cookie(headers, LANG_COOKIE).and_then(|c| Lang::parse(&c))
        {
            return lang;
        }
        headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|h| h.to_str().ok())
            .and_then(|accept| {
                accept
                    .split(',')
                    .filter_map(|part| Lang::parse(part.split(';').next().unwrap_or_default()))
                    .next()
            })
            .unwrap_or(Lang::Ru)
    }

    fn bundle(self) -> &'static Bundle {
        match self {
            Lang::Ru => &RU,
            Lang::En => &EN,
        }
    }

    /// The message `key`; the key itself if it is missing (a test catches that).
    pub fn t(self, key: &str) -> String {
        self.format(key, None)
    }

    /// The message `key` with one numeric argument, plural rules applied.
    pub fn n(self, key: &str, name: &str, count: i64) -> String {
        let mut args = FluentArgs::new();
        args.set(name.to_string(), FluentValue::from(count));
        self.format(key, Some(&args))
    }

    /// The message `key` with text arguments.
    pub fn with(self, key: &str, pairs: &[(&str, &str)]) -> String {
        let mut args = FluentArgs::new();
        for (name, value) in pairs {
            args.set(name.to_string(), FluentValue::from(value.to_string()));
        }
        self.format(key, Some(&args))
    }

    fn format(self, key: &str, args: Option<&FluentArgs>) -> String {
        let bundle = self.bundle();
        let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
            return key.to_string();
        };
        let mut errors = Vec::new();
        bundle
            .format_pattern(pattern, args, &mut errors)
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_plurals_follow_russian_rules() {
        let ru = Lang::Ru;
        assert_eq!(ru.n("records-count", "count", 1), "1 запись");
        assert_eq!(ru.n("records-count", "count", 3), "3 записи");
        assert_eq!(ru.n("records-count", "count", 5), "5 записей");
        assert_eq!(ru.n("records-count", "count", 21), "21 запись");
        assert_eq!(ru.n("records-count", "count", 112), "112 записей");
        assert_eq!(Lang::En.n("records-count", "count", 1), "1 record");
        assert_eq!(Lang::En.n("records-count", "count", 2), "2 records");
    }

    #[test]
    fn both_languages_have_every_message() {
        let keys = |source: &str| -> Vec<String> {
            source
                .lines()
                .filter(|l| !l.starts_with([' ', '#']) && l.contains(" ="))
                .map(|l| l.split(" =").next().unwrap_or_default().trim().to_string())
                .collect()
        };
        let (ru, en) = (
            keys(include_str!("../../locales/ru.ftl")),
            keys(include_str!("../../locales/en.ftl")),
        );
        assert_eq!(
            ru, en,
            "the two locale files list the same messages in the same order"
        );
        for key in &ru {
            assert_ne!(Lang::Ru.t(key), *key, "{key} renders");
        }
    }

    #[test]
    fn the_browser_language_is_taken_unless_one_was_chosen() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "accept-language",
            "de-DE,en;q=0.8,ru;q=0.5".parse().unwrap(),
        );
        assert_eq!(Lang::of_request(&headers), Lang::En);
        headers.insert("cookie", "lang=ru".parse().unwrap());
        assert_eq!(Lang::of_request(&headers), Lang::Ru);
        assert_eq!(Lang::of_request(&HeaderMap::new()), Lang::Ru);
    }
}
