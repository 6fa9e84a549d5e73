//! Wire text as the real servers produce it: names with emoji spans and HTML
//! entities for the generator, and the server-side encoding of a remark set
//! through `webwxoplog` (escape, then emoji → `<span class="emoji …">`).

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

/// (hanzi, pinyin) pairs; names are built from a surname and one or two given parts.
pub(crate) const SURNAMES: &[(&str, &str)] = &[
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("林", "lin"),
    ("欧阳", "ouyang"),
];

pub(crate) const GIVEN: &[(&str, &str)] = &[
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("洋", "yang"),
    ("艳", "yan"),
    ("勇", "yong"),
    ("军", "jun"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀英", "xiuying"),
    ("霞", "xia"),
    ("平", "ping"),
    ("小龙", "xiaolong"),
    ("思远", "siyuan"),
];

pub(crate) const LATIN_FIRST: &[&str] = &[
    "Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack", "Kevin",
    "Lily", "Mia", "Nick", "Olivia", "Peter", "Queenie", "Ryan", "Sophie", "Tom", "Uma", "Victor",
    "Wendy", "Xavier", "Yuki", "Zoe",
];

pub(crate) const LATIN_LAST: &[&str] = &[
    "Smith", "Chan", "Wong", "Lee", "Müller", "García", "O'Brien", "Nguyen", "Kim", "Tanaka",
];

pub(crate) const PROVINCES: &[(&str, &[&str])] = &[
    ("广东", &["深圳", "广州", "佛山", "东莞"]),
    ("北京", &["海淀", "朝阳", "东城"]),
    ("上海", &["浦东新区", "徐汇", "静安"]),
    ("浙江", &["杭州", "宁波", "温州"]),
    ("四川", &["成都", "绵阳"]),
    ("江苏", &["南京", "苏州", "无锡"]),
    ("湖北", &["武汉", "宜昌"]),
    ("", &[""]),
];

pub(crate) const SIGNATURES: &[&str] = &[
    "",
    "",
    "",
    "生活不止眼前的苟且",
    "Stay hungry, stay foolish",
    "在路上<span class=\"emoji emoji1f697\"></span>",
    "Tom &amp; Jerry forever",
    "&lt;3 coffee",
    "保持热爱，奔赴山海",
    "busy",
];

/// AttrStatus values seen on real contacts. The field is a set of privacy
/// and feature flags, so a handful of combinations cover most accounts and
/// many contacts share each one: it tells nobody apart.
pub(crate) const ATTR_STATUS: &[i64] = &[
    36961, 102945, 102945, 103357, 119911, 122983, 135461, 4293221,
];

pub(crate) const OFFICIALS: &[&str] = &[
    "腾讯新闻",
    "人民日报",
    "招商银行信用卡",
    "中国移动10086",
    "丁香医生",
    "GitHub",
    "The Economist",
    "得到",
    "顺丰速运",
    "12306",
    "美团外卖",
    "Rust语言中文社区",
    "滴滴出行",
    "国家反诈中心",
];

pub(crate) const GROUP_NAMES: &[&str] = &[
    "相亲相爱一家人",
    "大学同学",
    "Rust 中文社区 &amp; 朋友",
    "周末羽毛球<span class=\"emoji emoji1f3f8\"></span>",
    "项目组",
    "小区业主群",
    "Hiking &lt;Sunday&gt;",
    "公司年会筹备",
    "高中同学<span class=\"emoji emoji1f1e81f1f3\"></span>",
    "吃货联盟<span class=\"emoji emoji1f63c\"></span>",
    "Book club",
    "宝妈交流群",
    "篮球队",
    "技术分享",
    "旅行<span class=\"emoji emoji2708\"></span>计划",
];

/// Emoji spans as the real servers write them: 4-digit, 5-digit, 8-digit
/// (4+4), 10-digit (5+5, flags), codes from ItChat's table of wrong codes,
/// and one `</span` that lost its `>`.
pub(crate) const EMOJI_SPANS: &[&str] = &[
    "<span class=\"emoji emoji2600\"></span>",
    "<span class=\"emoji emoji2764\"></span>",
    "<span class=\"emoji emoji1f604\"></span>",
    "<span class=\"emoji emoji1f600\"></span>",
    "<span class=\"emoji emoji1f389\"></span>",
    "<span class=\"emoji emoji2764fe0f\"></span>",
    "<span class=\"emoji emoji1f1e81f1f3\"></span>",
    "<span class=\"emoji emoji1f1fa1f1f8\"></span>",
    "<span class=\"emoji emoji1f63c\"></span>",
    "<span class=\"emoji emoji1f639\"></span>",
    "<span class=\"emoji emoji1f64d\"></span>",
    "<span class=\"emoji emoji1f33a\"></span",
];

/// Entity-bearing decorations (`&amp;`, `&lt;`, `&gt;`).
pub(crate) const ENTITY_BITS: &[&str] = &[" &amp; Co", "&lt;3", " &gt;_&lt;", "A&amp;B "];

/// ItChat's table of wrong codes, as (what the server writes, what it means).
const WRONG_CODES: &[(u32, u32)] = &[
    (0x1f63c, 0x1f601),
    (0x1f639, 0x1f602),
    (0x1f63a, 0x1f603),
    (0x1f4ab, 0x1f616),
    (0x1f64d, 0x1f614),
    (0x1f63b, 0x1f60d),
    (0x1f63d, 0x1f618),
    (0x1f64e, 0x1f621),
    (0x1f63f, 0x1f622),
];

/// A person's name: wire text plus PYInitial / PYQuanPin.
pub(crate) struct GenName {
    pub wire: String,
    pub py_initial: String,
    pub py_quan_pin: String,
}

pub(crate) fn person_name(rng: &mut StdRng) -> GenName {
    let (mut wire, py_initial, py_quan_pin) = if rng.random_bool(0.6) {
        let (sh, sp) = *SURNAMES.choose(rng).expect("non-empty");
        let parts = rng.random_range(1..=2);
        let mut wire = sh.to_string();
        let mut initial = sp[..1].to_uppercase();
        let mut quan = sp.to_string();
        for _ in 0..parts {
            let (gh, gp) = *GIVEN.choose(rng).expect("non-empty");
            wire.push_str(gh);
            initial.push_str(&gp[..1].to_uppercase());
            quan.push_str(gp);
        }
        (wire, initial, quan)
    } else {
        let first = *LATIN_FIRST.choose(rng).expect("non-empty");
        let mut wire = first.to_string();
        if rng.random_bool(0.4) {
            wire.push(' ');
            wire.push_str(LATIN_LAST.choose(rng).expect("non-empty"));
        }
        let quan: String = wire
            .chars()
            .filter(|c| c.is_ascii_alphabetic())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let initial = wire
            .split(' ')
            .filter_map(|w| w.chars().next())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        (wire, initial, quan)
    };
    decorate(rng, &mut wire);
    GenName {
        wire,
        py_initial,
        py_quan_pin,
    }
}

/// Adds, now and then, an emoji span or an entity to wire text.
pub(crate) fn decorate(rng: &mut StdRng, wire: &mut String) {
    if rng.random_bool(0.2) {
        wire.push_str(EMOJI_SPANS.choose(rng).expect("non-empty"));
    }
    if rng.random_bool(0.06) {
        wire.push_str(ENTITY_BITS.choose(rng).expect("non-empty"));
    }
}

/// What the server stores for a remark received as plain UTF-8: HTML-escaped,
/// emoji turned into spans (with ItChat's wrong codes where they apply).
pub(crate) fn encode_wire(plain: &str) -> String {
    let mut out = String::with_capacity(plain.len() + 16);
    let chars: Vec<char> = plain.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let cp = c as u32;
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ if is_regional(cp) && chars.get(i + 1).is_some_and(|n| is_regional(*n as u32)) => {
                let next = chars[i + 1] as u32;
                out.push_str(&format!(
                    "<span class=\"emoji emoji{cp:x}{next:x}\"></span>"
                ));
                i += 1;
            }
            _ if is_emoji(cp) => {
                let wire_cp = WRONG_CODES
                    .iter()
                    .find(|(_, meant)| *meant == cp)
                    .map_or(cp, |(wrong, _)| *wrong);
                if cp <= 0xffff && chars.get(i + 1) == Some(&'\u{fe0f}') {
                    out.push_str(&format!(
                        "<span class=\"emoji emoji{wire_cp:04x}fe0f\"></span>"
                    ));
                    i += 1;
                } else {
                    out.push_str(&format!("<span class=\"emoji emoji{wire_cp:x}\"></span>"));
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

fn is_regional(cp: u32) -> bool {
    (0x1f1e6..=0x1f1ff).contains(&cp)
}

fn is_emoji(cp: u32) -> bool {
    (0x1f000..=0x1faff).contains(&cp) || (0x2600..=0x27bf).contains(&cp) || cp == 0x2b50
}

/// RemarkPYInitial / RemarkPYQuanPin for a remark: only Latin letters are
/// romanised here (the real server has a full pinyin table).
pub(crate) fn remark_py(wire: &str) -> (String, String) {
    if wire.is_empty() {
        return (String::new(), String::new());
    }
    let quan: String = wire
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let initial = wire
        .split_whitespace()
        .filter_map(|w| w.chars().find(|c| c.is_ascii_alphanumeric()))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (initial, quan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remark_encoding_escapes_then_spans() {
        assert_eq!(
            encode_wire("Tom & <Jerry> 😀"),
            "Tom &amp; &lt;Jerry&gt; <span class=\"emoji emoji1f600\"></span>"
        );
        assert_eq!(
            encode_wire("🇨🇳"),
            "<span class=\"emoji emoji1f1e81f1f3\"></span>"
        );
        // 😁 goes out under the code ItChat's table maps back.
        assert_eq!(
            encode_wire("😁"),
            "<span class=\"emoji emoji1f63c\"></span>"
        );
        assert_eq!(
            encode_wire("❤️"),
            "<span class=\"emoji emoji2764fe0f\"></span>"
        );
        assert_eq!(encode_wire("老王"), "老王");
    }
}
