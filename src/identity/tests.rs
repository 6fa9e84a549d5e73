//! Behaviour of the matcher on small hand-made address books.

use super::*;

/// A friend with a full profile and a unique avatar.
fn friend(nick: &str, seq: &str) -> Person {
    Person {
        kind: Kind::Friend,
        real_id: None,
        nick_name: nick.into(),
        remark_name: Text::EMPTY,
        alias: Text::EMPTY,
        signature: "busy".into(),
        province: "广东".into(),
        city: "深圳".into(),
        sex: 1,
        avatar_seq: Some(seq.into()),
        cards: Vec::new(),
    }
}

/// People other than the ones under test, so rarity has something to count.
fn crowd(n: usize) -> Vec<Person> {
    (0..n)
        .map(|i| {
            let mut p = friend(&format!("crowd{i}"), &format!("9{i:08}"));
            p.sex = [1, 2, 0][i % 3];
            (p.province, p.city) = match i % 6 {
                0 => ("广东".into(), "广州".into()),
                1 => ("北京".into(), "海淀".into()),
                2 => ("上海".into(), "徐汇".into()),
                3 => ("浙江".into(), "杭州".into()),
                4 => (Text::EMPTY, Text::EMPTY),
                _ => ("四川".into(), "成都".into()),
            };
            p.signature = ["", "保持热爱", "Stay hungry", "在路上", "", "busy"][i % 6].into();
            p
        })
        .collect()
}

/// `old` and `new` after the same crowd; indices of the people under test
/// are unchanged.
fn with_crowd(mut old: Vec<Person>, mut new: Vec<Person>) -> (Vec<Person>, Vec<Person>) {
    old.extend(crowd(40));
    new.extend(crowd(40));
    (old, new)
}

fn linked_to(o: &Outcome, old: usize) -> Option<usize> {
    o.links.iter().find(|l| l.old == old).map(|l| l.new)
}

#[test]
fn an_unchanged_address_book_links_everyone() {
    let (old, new) = with_crowd(vec![friend("Tom", "1")], vec![friend("Tom", "1")]);
    let out = link_people(&old, &new);
    assert_eq!(out.links.len(), old.len());
    assert!(out.links.iter().all(|l| l.old == l.new));
    assert!(out.unresolved.is_empty());
    assert_eq!(
        out.links[0].evidence,
        "avatar, nick name, place, signature, sex"
    );
}

#[test]
fn identical_look_alikes_never_link() {
    let twin = friend("Alice", "777");
    let (old, new) = with_crowd(
        vec![twin.clone(), twin.clone()],
        vec![twin.clone(), twin.clone()],
    );
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), None);
    assert_eq!(linked_to(&out, 1), None);
    assert!(out.links.iter().all(|l| l.new > 1), "{:?}", out.links);
    // Both stay listed, each with both twins as candidates, for a person to decide.
    let listed: Vec<_> = out.unresolved.iter().filter(|u| u.old < 2).collect();
    assert_eq!(listed.len(), 2);
    for u in listed {
        let cands: Vec<usize> = u.candidates.iter().map(|c| c.new).collect();
        assert_eq!(cands, vec![0, 1]);
        assert_eq!(u.candidates[0].score, u.candidates[1].score);
    }
}

#[test]
fn look_alikes_stay_unlinked_when_one_of_them_changes_or_leaves() {
    let twin = friend("Alice", "777");
    let mut renamed = twin.clone();
    renamed.nick_name = "Alicia".into();
    // One renamed: each new row still scores the same against both old twins.
    let (old, new) = with_crowd(
        vec![twin.clone(), twin.clone()],
        vec![renamed, twin.clone()],
    );
    let out = link_people(&old, &new);
    assert!(out.links.iter().all(|l| l.old > 1 && l.new > 1));
    // One gone: the one left is either of them.
    let (old, new) = with_crowd(vec![twin.clone(), twin.clone()], vec![twin.clone()]);
    let out = link_people(&old, &new);
    assert!(out.links.iter().all(|l| l.old > 1));
    // The same in the other direction: a single old row, twins in the new login.
    let (old, new) = with_crowd(vec![twin.clone()], vec![twin.clone(), twin]);
    let out = link_people(&old, &new);
    assert!(out.links.iter().all(|l| l.new > 1));
}

#[test]
fn equal_real_ids_link_whatever_else_differs() {
    let mut a = friend("Tom", "1");
    a.real_id = Some("wxid_tom".into());
    let mut b = friend("Completely different", "2");
    b.real_id = Some("wxid_tom".into());
    b.sex = 2;
    b.province = "北京".into();
    let (old, new) = with_crowd(vec![a], vec![b]);
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), Some(0));
    assert!(out.links[0].evidence.starts_with("real id"));
}

#[test]
fn different_real_ids_never_link_even_when_all_else_agrees() {
    let mut a = friend("Tom", "1");
    a.remark_name = "Tom from work".into();
    a.real_id = Some("wxid_tom".into());
    let mut b = a.clone();
    b.real_id = Some("wxid_someone_else".into());
    let (old, new) = with_crowd(vec![a.clone()], vec![b.clone()]);
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), None);
    // A real id known on one side only neither helps nor hurts.
    b.real_id = None;
    let (old, new) = with_crowd(vec![a], vec![b]);
    assert_eq!(linked_to(&link_people(&old, &new), 0), Some(0));
}

#[test]
fn a_real_id_resolves_look_alikes() {
    let mut a = friend("Alice", "777");
    let mut b = a.clone();
    a.real_id = Some("wxid_a".into());
    b.real_id = Some("wxid_b".into());
    let mut b_new = b.clone();
    b_new.real_id = None;
    // The new login's map named only `a`; `b` is the other twin.
    let (old, new) = with_crowd(vec![a.clone(), b], vec![b_new, a]);
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), Some(1));
    assert_eq!(linked_to(&out, 1), Some(0));
}

#[test]
fn a_value_many_people_share_weighs_less() {
    // The same remark+profile evidence, once unique and once shared by three.
    let mut tom = friend("Tom", "1");
    tom.remark_name = "Boss".into();
    let mut tom_new = tom.clone();
    tom_new.nick_name = "Tommy".into();
    tom_new.avatar_seq = Some("2".into());
    // Two others who share the remark, or two who do not.
    let score = |sharers: usize| {
        let mut old = vec![tom.clone()];
        let mut new = vec![tom_new.clone()];
        for i in 0..2 {
            let mut p = friend(&format!("other{i}"), &format!("5{i}"));
            p.remark_name = if i < sharers {
                "Boss".into()
            } else {
                format!("Other{i}").into()
            };
            p.sex = 2;
            p.signature = "other".into();
            old.push(p.clone());
            new.push(p);
        }
        let (old, new) = with_crowd(old, new);
        let out = link_people(&old, &new);
        out.links
            .iter()
            .find(|l| l.old == 0)
            .map(|l| l.score)
            .or_else(|| {
                out.unresolved
                    .iter()
                    .find(|u| u.old == 0)
                    .map(|u| u.candidates[0].score)
            })
            .expect("a candidate")
    };
    let (unique, shared) = (score(0), score(2));
    assert!(
        (unique - shared - 3f64.log2()).abs() < 1e-9,
        "{unique} vs {shared}"
    );
}

#[test]
fn a_friend_who_only_renamed_links() {
    let (old, new) = with_crowd(vec![friend("Tom", "1")], vec![friend("Jerry", "1")]);
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), Some(0));
    assert!(out.links[0].evidence.ends_with("differs: nick name"));
}

#[test]
fn a_friend_with_a_new_avatar_and_nick_but_the_same_remark_and_profile_links() {
    let mut a = friend("Tom", "1");
    a.remark_name = "Tom (同事)".into();
    let mut b = friend("Jerry", "2");
    b.remark_name = "Tom (同事)".into();
    let (old, new) = with_crowd(vec![a], vec![b]);
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), Some(0));
    assert!(out.links[0].evidence.starts_with("remark"));
}

#[test]
fn a_new_avatar_links_a_lone_candidate_only_if_no_other_field_was_set_or_cleared() {
    let person = |seq: &str, signature: &str| {
        let mut p = friend("林小龙", seq);
        (p.province, p.city) = ("北京".into(), "海淀".into());
        p.sex = 2;
        p.signature = signature.into();
        p
    };
    // Nick name, a common place and sex, with the avatar changed: enough
    // only as a new face.
    let (old, new) = with_crowd(vec![person("1", "")], vec![person("2", "")]);
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), Some(0));
    // A signature where there was none is a second change: someone else.
    let (old, new) = with_crowd(vec![person("1", "")], vec![person("2", "Stay hungry")]);
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), None, "{:?}", out.links.first());
}

#[test]
fn a_faint_rival_holds_back_a_new_face() {
    let person = |seq: &str| {
        let mut p = friend("林小龙", seq);
        (p.province, p.city) = ("北京".into(), "海淀".into());
        p.sex = 2;
        p.signature = Text::EMPTY;
        p
    };
    // Someone new of the same nick name, sex and place unknown: a few bits
    // against the old row, but above zero, so the new face is not alone.
    let mut rival = friend("林小龙", "3");
    rival.sex = 0;
    (rival.province, rival.city) = (Text::EMPTY, Text::EMPTY);
    rival.signature = Text::EMPTY;
    let (old, new) = with_crowd(vec![person("1")], vec![person("2"), rival]);
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), None, "{:?}", out.links.first());
}

#[test]
fn a_unique_avatar_alone_is_not_enough() {
    let mut a = friend("Tom", "1");
    a.sex = 0;
    a.province = Text::EMPTY;
    a.city = Text::EMPTY;
    a.signature = Text::EMPTY;
    let mut b = a.clone();
    b.nick_name = "Jerry".into();
    // Among a few hundred people: 13 bits are short of the 14.2 needed.
    let (mut old, mut new) = (vec![a], vec![b]);
    old.extend(crowd(300));
    new.extend(crowd(300));
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), None);
    assert_eq!(
        out.unresolved[0].candidates[0].evidence,
        "avatar; differs: nick name"
    );
}

#[test]
fn swapped_remarks_do_not_mislink() {
    let mut a = friend("Tom", "1");
    a.remark_name = "Boss".into();
    let mut b = friend("Jerry", "2");
    b.sex = 2;
    b.remark_name = "Neighbour".into();
    let (mut a2, mut b2) = (a.clone(), b.clone());
    a2.remark_name = "Neighbour".into();
    b2.remark_name = "Boss".into();
    let (old, new) = with_crowd(vec![a, b], vec![a2, b2]);
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), Some(0));
    assert_eq!(linked_to(&out, 1), Some(1));
}

/// `a` as the next login shows him after a new nick name and avatar.
fn renamed_with_a_new_face(a: &Person) -> Person {
    let mut b = a.clone();
    b.nick_name = "Jerry".into();
    b.avatar_seq = Some("2".into());
    b
}

#[test]
fn group_cards_carry_a_friend_who_changed_name_and_avatar() {
    let mut a = friend("Tom", "1");
    a.cards = vec![card_key("大学同学", "汤姆"), card_key("篮球队", "Tom 前锋")];
    a.cards.sort_unstable();
    let b = renamed_with_a_new_face(&a);
    let (old, new) = with_crowd(vec![a], vec![b]);
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), Some(0));
    assert!(out.links[0].evidence.starts_with("group cards"));
}

/// The second round for `old` and `new` (each with the group keys of each
/// person under test) after the crowd, each of the crowd in one of eight
/// groups on both sides; and the first round's outcome.
fn in_groups_with_crowd(
    old: Vec<(Person, Vec<u64>)>,
    new: Vec<(Person, Vec<u64>)>,
) -> (Outcome, Outcome) {
    let [(old, old_groups), (new, new_groups)] = [old, new].map(|side| {
        let (people, mut groups): (Vec<Person>, Vec<Vec<u64>>) = side.into_iter().unzip();
        groups.extend((0..40).map(|i| vec![1 + i as u64 % 8]));
        (people, groups)
    });
    let (old, new) = with_crowd(old, new);
    let table = People::build(&old, &new);
    let first = table.link();
    let second = table.relink([old_groups, new_groups], &first.pairs());
    (first, second)
}

#[test]
fn groups_in_common_carry_a_friend_who_changed_name_and_avatar() {
    let a = friend("Tom", "1");
    let b = renamed_with_a_new_face(&a);
    let (first, out) = in_groups_with_crowd(vec![(a, vec![1, 2, 3])], vec![(b, vec![1, 2, 3])]);
    assert_eq!(linked_to(&first, 0), None, "the first round misses him");
    assert_eq!(linked_to(&out, 0), Some(0));
    assert!(out.links[0].evidence.contains("groups in common"));
    assert_eq!(out.links.len(), first.links.len() + 1);
}

#[test]
fn groups_in_common_do_not_tell_apart_two_in_the_same_groups() {
    let a = friend("Tom", "1");
    let b = renamed_with_a_new_face(&a);
    let mut c = b.clone();
    c.avatar_seq = Some("3".into());
    let (_, out) = in_groups_with_crowd(
        vec![(a, vec![1, 2, 3])],
        vec![(b, vec![1, 2, 3]), (c, vec![1, 2, 3])],
    );
    assert_eq!(linked_to(&out, 0), None);
}

#[test]
fn a_few_groups_in_common_among_many_say_nothing() {
    // Three groups kept, five joined: under half of the groups either is
    // in, as people of one circle share.
    let a = friend("Tom", "1");
    let b = renamed_with_a_new_face(&a);
    let (_, out) = in_groups_with_crowd(vec![(a, vec![1, 2, 3])], vec![(b, (1..=8).collect())]);
    assert_eq!(linked_to(&out, 0), None);
}

#[test]
fn kinds_must_agree() {
    let a = friend("腾讯新闻", "1");
    let mut b = a.clone();
    b.kind = Kind::Official;
    let (old, new) = with_crowd(vec![a], vec![b]);
    assert_eq!(linked_to(&link_people(&old, &new), 0), None);
}

#[test]
fn each_row_links_at_most_once() {
    // One old Tom, two new candidates that differ: the closer one wins,
    // and only once.
    let a = friend("Tom", "1");
    let mut near = a.clone();
    near.signature = "new signature".into();
    let mut far = a.clone();
    far.avatar_seq = Some("2".into());
    let (old, new) = with_crowd(vec![a], vec![far, near]);
    let out = link_people(&old, &new);
    assert_eq!(linked_to(&out, 0), Some(1));
    let mut seen_new: Vec<usize> = out.links.iter().map(|l| l.new).collect();
    seen_new.sort_unstable();
    seen_new.dedup();
    assert_eq!(seen_new.len(), out.links.len());
}

#[test]
fn the_same_input_gives_the_same_outcome() {
    let twin = friend("Alice", "777");
    let (old, new) = with_crowd(
        vec![friend("Tom", "1"), twin.clone(), twin.clone()],
        vec![twin.clone(), friend("Tom", "1"), twin],
    );
    let first = link_people(&old, &new);
    for _ in 0..3 {
        assert_eq!(link_people(&old, &new), first);
    }
    assert_eq!(first.pairs()[0], (0, 1));
}

// ---- groups ----

fn stranger_keys(prefix: &str, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| stranger_member_key(&format!("{prefix}{i}"), ""))
        .collect()
}

fn group(name: &str, members: Vec<u64>) -> Group {
    let mut members = members;
    members.push(contact_member_key(0)); // the account itself is in every group
    members.sort_unstable();
    members.dedup();
    Group {
        real_id: None,
        nick_name: name.into(),
        member_count: members.len() as i64,
        avatar_seq: None,
        members,
    }
}

/// Groups besides the ones under test.
fn other_groups(old: &mut Vec<Group>, new: &mut Vec<Group>) {
    for i in 0..20 {
        let g = group(
            &format!("other{i}"),
            stranger_keys(&format!("g{i}m"), 5 + i),
        );
        old.push(g.clone());
        new.push(g);
    }
}

#[test]
fn a_renamed_group_links_by_its_members() {
    let mut members = stranger_keys("m", 40);
    let mut old = vec![group("大学同学", members.clone())];
    members.truncate(38);
    members.extend(stranger_keys("joined", 2));
    let mut new = vec![group("大学同学聚会", members)];
    other_groups(&mut old, &mut new);
    let out = link_groups(&mut old, &mut new);
    let l = out.links.iter().find(|l| l.old == 0).expect("linked");
    assert_eq!(l.new, 0);
    assert!(
        l.evidence.starts_with("members (39 shared of 43)"),
        "{}",
        l.evidence
    );
    assert!(l.evidence.contains("differs: name"));
}

#[test]
fn unnamed_groups_link_by_their_members() {
    let mut old = vec![
        group("", stranger_keys("a", 6)),
        group("", stranger_keys("b", 6)),
    ];
    let mut new = vec![
        group("", stranger_keys("b", 6)),
        group("", stranger_keys("a", 6)),
    ];
    other_groups(&mut old, &mut new);
    let out = link_groups(&mut old, &mut new);
    assert_eq!(linked_to(&out, 0), Some(1));
    assert_eq!(linked_to(&out, 1), Some(0));
}

#[test]
fn groups_with_the_same_members_and_name_do_not_link() {
    let g = group("家", stranger_keys("family", 4));
    let mut old = vec![g.clone(), g.clone()];
    let mut new = vec![g.clone(), g];
    other_groups(&mut old, &mut new);
    let out = link_groups(&mut old, &mut new);
    assert!(out.links.iter().all(|l| l.old > 1 && l.new > 1));
}

#[test]
fn a_group_with_a_different_crowd_under_the_same_name_does_not_link() {
    let mut old = vec![group("项目组", stranger_keys("old", 30))];
    let mut new = vec![group("项目组", stranger_keys("new", 30))];
    other_groups(&mut old, &mut new);
    let out = link_groups(&mut old, &mut new);
    assert_eq!(linked_to(&out, 0), None);
}

#[test]
fn a_group_real_id_decides() {
    let mut a = group("A", stranger_keys("a", 10));
    a.real_id = Some("123@chatroom".into());
    let mut b = group("B", stranger_keys("b", 10));
    b.real_id = Some("123@chatroom".into());
    let mut a_twin = a.clone();
    a_twin.real_id = Some("456@chatroom".into());
    let mut old = vec![a];
    let mut new = vec![a_twin, b];
    other_groups(&mut old, &mut new);
    let out = link_groups(&mut old, &mut new);
    assert_eq!(linked_to(&out, 0), Some(1));
}

#[test]
fn a_removed_group_and_a_new_one_sharing_a_minority_of_members_stay_unlinked() {
    let friends = |from: i64, to: i64| (from..to).map(contact_member_key).collect::<Vec<_>>();
    let mut removed = group("宝妈交流群", [friends(1, 101), friends(101, 221)].concat());
    removed.avatar_seq = Some("1".into());
    let mut created = group("项目组3", [friends(1, 101), friends(221, 441)].concat());
    created.avatar_seq = Some("2".into());
    // A group renamed, with a new avatar, that kept half its members.
    let mut kept = group("同事", friends(500, 540));
    kept.avatar_seq = Some("3".into());
    let mut renamed = group("前同事", [friends(500, 520), friends(540, 550)].concat());
    renamed.avatar_seq = Some("4".into());
    let mut old = vec![removed, kept];
    let mut new = vec![created, renamed];
    other_groups(&mut old, &mut new);
    let out = link_groups(&mut old, &mut new);
    assert_eq!(linked_to(&out, 0), None, "{:?}", out.links.first());
    assert_eq!(linked_to(&out, 1), Some(1));
}
