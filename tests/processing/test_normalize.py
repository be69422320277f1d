"""Text normalisation: each case is a written input and the exact text Spark-TTS is given.

The readings pinned here are the ones ``rvc.processing.normalize_en`` and
``normalize_zh`` document (money as "three dollars and fifty cents" / 元角分,
a 4-digit year only after a cue word, phone numbers digit by digit, URLs and
e-mail addresses untouched). A change of reading is a change of this table.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from rvc.errors import InvalidInput
from rvc.processing.normalize import Script, normalize_text, script_runs
from rvc.processing.requests import TextLimit, spoken_text

ENGLISH = [
    # cardinals, decimals, signs
    ("I have 3 apples.", "I have three apples."),
    ("It is 1,000,000 strong.", "It is one million strong."),
    ("Room 101", "Room one hundred and one"),
    ("Pi is 3.14159.", "Pi is three point one four one five nine."),
    ("Pay 3.50 now.", "Pay three point five zero now."),
    ("One .5 step", "One point five step"),
    ("Temperature fell to -3.", "Temperature fell to minus three."),
    ("Windows 11 is out.", "Windows eleven is out."),
    # ordinals
    ("He came 2nd.", "He came second."),
    ("the 3rd time", "the third time"),
    ("He finished 21st.", "He finished twenty-first."),
    ("the 100th day", "the one hundredth day"),
    # money
    ("$3.50", "three dollars and fifty cents"),
    ("It costs $3.", "It costs three dollars."),
    ("It costs $1.", "It costs one dollar."),
    ("That is $1,250.75 in total.", "That is one thousand two hundred and fifty dollars and seventy-five cents in total."),
    ("Pay $0.05 now.", "Pay five cents now."),
    ("Revenue hit $1.2 billion.", "Revenue hit one point two billion dollars."),
    ("A $5m deal.", "A five million dollars deal."),
    ("It was €3.50.", "It was three euro and fifty cents."),
    ("It was £1.", "It was one pound sterling."),
    ("It costs ¥100.", "It costs one hundred yen."),
    ("-$5", "minus five dollars"),
    ("100 USD", "one hundred dollars"),
    # percentages
    ("Sales rose 10%.", "Sales rose ten percent."),
    ("The rate is 3.5%.", "The rate is three point five percent."),
    ("Down -2%.", "Down minus two percent."),
    # dates and years
    ("Meet on 2026-12-01.", "Meet on December first, twenty twenty-six."),
    ("We met on 1/15/2026.", "We met on January fifteenth, twenty twenty-six."),
    ("Due 31/12/2026.", "Due December thirty-first, twenty twenty-six."),
    ("Born May 4, 1990.", "Born May fourth, nineteen ninety."),
    ("On Dec. 25 we rest.", "On December twenty-fifth we rest."),
    ("On 4th July 1776 they signed.", "On the fourth of July, seventeen seventy-six they signed."),
    ("In March 2026 it ends.", "In March twenty twenty-six it ends."),
    ("in 1999", "in nineteen ninety-nine"),
    ("Since 2005 it grew.", "Since two thousand and five it grew."),
    ("in 2010 and 2011", "in twenty ten and twenty eleven"),
    ("from 1990-2000", "from nineteen ninety to two thousand"),
    ("1999 apples", "one thousand nine hundred and ninety-nine apples"),
    ("The 1990s were great.", "The nineteen nineties were great."),
    ("the '90s", "the nineties"),
    # times
    ("Lunch at 12:30.", "Lunch at twelve thirty."),
    ("9:05", "nine oh five"),
    ("10:00", "ten o'clock"),
    ("At 3:45 pm.", "At three forty-five PM."),
    ("at 7 p.m. The end", "at seven PM. The end"),
    ("At 5pm.", "At five PM."),
    ("12:30:15", "twelve thirty and fifteen seconds"),
    # units
    ("It is 3 km away.", "It is three kilometers away."),
    ("A 1 m rope.", "A one meter rope."),
    ("It weighs 2.5 kg.", "It weighs two point five kilograms."),
    ("Drive 60 mph.", "Drive sixty miles per hour."),
    ("Add 250 ml of milk.", "Add two hundred and fifty milliliters of milk."),
    ("It has 16 GB of RAM.", "It has sixteen gigabytes of RAM."),
    ("It's 25°C today.", "It's twenty-five degrees Celsius today."),
    ("It's -5°F outside.", "It's minus five degrees Fahrenheit outside."),
    ("Wait 15 min.", "Wait fifteen minutes."),
    ("2x faster", "two times faster"),
    # fractions and ranges
    ("3/4 of them", "three quarters of them"),
    ("Read 2/3 of it.", "Read two thirds of it."),
    ("1½ cups", "one and one half cups"),
    ("Open 24/7.", "Open twenty-four seven."),
    ("pages 5-10.", "pages five to ten."),
    # abbreviations
    ("Dr. Smith is here.", "Doctor Smith is here."),
    ("Prof. Lee and Mrs. Park met Mr. Kim.", "Professor Lee and Missus Park met Mister Kim."),
    ("St. Louis", "Saint Louis"),
    ("Main St.", "Main Street."),
    ("He lives on Elm Dr.", "He lives on Elm Drive."),
    ("Apple Inc. makes phones.", "Apple Incorporated makes phones."),
    ("Martin Luther King Jr. spoke.", "Martin Luther King Junior spoke."),
    ("See Fig. 3 and Vol. 2.", "See figure three and volume two."),
    ("No. 5", "number five"),
    ("cats vs. dogs", "cats versus dogs"),
    ("approx. 20 people", "approximately twenty people"),
    ("e.g. this", "for example this"),
    ("apples, pears, etc. And more.", "apples, pears, et cetera. And more."),
    # symbols
    ("Results: 3 + 4 = 7.", "Results: three plus four equals seven."),
    ("Tom & Jerry", "Tom and Jerry"),
    ("R&D", "R and D"),
    ("~5 minutes", "about five minutes"),
    ("±2 degrees", "plus or minus two degrees"),
    ("#3 in line", "number three in line"),
    ("8 ÷ 2", "eight divided by two"),
    # digit strings: phone numbers, codes and long numbers digit by digit; versions and addresses by part
    ("Call 555-123-4567 now.", "Call five five five, one two three, four five six seven now."),
    ("Call (555) 123-4567.", "Call five five five, one two three, four five six seven."),
    ("Call +1 555 123 4567.", "Call plus one, five five five, one two three, four five six seven."),
    ("Code 0042.", "Code zero zero four two."),
    ("ID 12345678901", "ID one two three four five six seven eight nine zero one"),
    ("version 3.10.2", "version three dot ten dot two"),
    # left as written
    ("Hello, world!", "Hello, world!"),
    ("No numbers here.", "No numbers here."),
    ("I said no. Then left.", "I said no. Then left."),
    ("Visit www.example.com/page2 today.", "Visit www.example.com/page2 today."),
    ("Mail me at john.doe99@example.com.", "Mail me at john.doe99@example.com."),
    ("See https://example.com/2026/12/01 for 3 more.", "See https://example.com/2026/12/01 for three more."),
    ("A4 paper and mp3 files", "A4 paper and mp3 files"),
    ("COVID-19 spread.", "COVID-nineteen spread."),
    ("5G phones", "five G phones"),
]

CHINESE = [
    # cardinals, ordinals, decimals, signs
    ("我有3个苹果。", "我有三个苹果。"),
    ("第3章", "第三章"),
    ("第21届", "第二十一届"),
    ("第1名", "第一名"),
    ("第2个", "第二个"),
    ("共1,000人", "共一千人"),
    ("每天8小时", "每天八小时"),
    ("他20岁", "他二十岁"),
    ("来了2个人", "来了两个人"),
    ("约1.5万人", "约一点五万人"),
    ("损失3.5亿", "损失三点五亿"),
    ("圆周率是3.14", "圆周率是三点一四"),
    ("概率是0.5", "概率是零点五"),
    ("亏损-5元", "亏损负五元"),
    # money
    ("价格是3.50元", "价格是三元五角"),
    ("只要0.50元", "只要五角"),
    ("找零0.05元", "找零五分"),
    ("票价3.05元", "票价三元零五分"),
    ("一共12.00元", "一共十二元"),
    ("花了100元", "花了一百元"),
    ("花了2块钱", "花了两块钱"),
    ("价格¥3.50", "价格三元五角"),
    ("价格￥1,200", "价格一千二百元"),
    ("售价$3.50", "售价三点五美元"),
    ("价值$3.00", "价值三美元"),
    ("€20一张", "二十欧元一张"),
    ("£5一杯", "五英镑一杯"),
    ("投资2.5亿元", "投资二点五亿元"),
    ("约100万元", "约一百万元"),
    # percentages
    ("增长10%", "增长百分之十"),
    ("下降3.5%", "下降百分之三点五"),
    ("有-2%的变化", "有负百分之二的变化"),
    ("占5‰", "占千分之五"),
    ("10%的人", "百分之十的人"),
    # dates and years
    ("2026年12月1日", "二零二六年十二月一日"),
    ("日期是2026-12-01", "日期是二零二六年十二月一日"),
    ("日期是2026/12/01", "日期是二零二六年十二月一日"),
    ("生于1999年", "生于一九九九年"),
    ("5000年前", "五零零零年前"),
    ("学了15年", "学了十五年"),
    ("12月25日", "十二月二十五日"),
    ("从2020年到2025年", "从二零二零年到二零二五年"),
    ("2026年的计划", "二零二六年的计划"),
    # times and ratios
    ("12:30开会", "十二点三十分开会"),
    ("会议在12:30。", "会议在十二点三十分。"),
    ("12:30。", "十二点三十分。"),
    ("9:05出发", "九点零五分出发"),
    ("2:00见", "两点见"),
    ("10:00到", "十点到"),
    ("时间12:30:15", "时间十二点三十分十五秒"),
    ("下午2点", "下午两点"),
    ("比分3:2", "比分三比二"),
    # ranges
    ("需要3-5天", "需要三到五天"),
    ("需要3~5天", "需要三到五天"),
    ("来了10～20人", "来了十到二十人"),
    # units
    ("我跑了3km", "我跑了三公里"),
    ("距离5 km", "距离五公里"),
    ("重5kg", "重五公斤"),
    ("走了2km", "走了两公里"),
    ("喝了500ml水", "喝了五百毫升水"),
    ("时速120km/h", "时速一百二十公里每小时"),
    ("等了30min", "等了三十分钟"),
    ("面积100㎡", "面积一百平方米"),
    ("电池5000mAh", "电池五千毫安时"),
    ("温度-3℃", "温度负三摄氏度"),
    ("今天25°C", "今天二十五摄氏度"),
    ("体温37.5℃", "体温三十七点五摄氏度"),
    ("气温98°F", "气温九十八华氏度"),
    ("转了90°", "转了九十度"),
    # fractions and symbols
    ("喝了3/4杯", "喝了四分之三杯"),
    ("一半是1/2", "一半是二分之一"),
    ("算式1+1=2", "算式一加一等于二"),
    ("面积3×4", "面积三乘四"),
    ("误差±5", "误差正负五"),
    ("猫&狗", "猫和狗"),
    # digit strings
    ("电话13800138000", "电话一三八零零一三八零零零"),
    ("拨打010-12345678", "拨打零一零 一二三四五六七八"),
    ("客服400-820-8820", "客服四零零 八二零 八八二零"),
    ("编号007", "编号零零七"),
    ("身份证110101199003071234", "身份证一一零一零一一九九零零三零七一二三四"),
    # left as written
    ("没有数字。", "没有数字。"),
    ("你好，世界！", "你好，世界！"),
    ("网址https://example.com/2026", "网址https://example.com/2026"),
    ("邮箱a1@example.com", "邮箱a1@example.com"),
    # mixed scripts: each run in its own language
    ("这是3D电影", "这是三D电影"),
    ("I have 5个苹果", "I have 五个苹果"),
    ("我用iPhone 15", "我用iPhone fifteen"),
    ("第３章", "第三章"),
]


@pytest.mark.parametrize(("text", "expected"), ENGLISH, ids=[text for text, _ in ENGLISH])
def test_english_is_written_as_spoken(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


@pytest.mark.parametrize(("text", "expected"), CHINESE, ids=[text for text, _ in CHINESE])
def test_chinese_is_written_as_spoken(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


def test_each_language_has_at_least_sixty_cases() -> None:
    assert len(ENGLISH) >= 60 and len(CHINESE) >= 60


@pytest.mark.parametrize(("text", "expected"), ENGLISH + CHINESE, ids=[text for text, _ in ENGLISH + CHINESE])
def test_normalising_twice_changes_nothing(text: str, expected: str) -> None:
    """The output is words only: a second pass (a client sending back X-Normalized-Text) finds nothing to do."""
    assert normalize_text(expected) == expected


def test_no_digit_survives_outside_urls_addresses_and_names() -> None:
    kept = re.compile(r"https?://\S+|www\.\S+|\S+@\S+|A4|mp3")
    for text, _ in ENGLISH + CHINESE:
        assert not re.search(r"\d", kept.sub("", normalize_text(text))), text


def test_runs_split_by_script_and_numbers_follow_the_word_they_touch() -> None:
    assert script_runs("I have 5个苹果 and 3 pears") == [
        (Script.ENGLISH, "I have"), (Script.CHINESE, " 5个苹果"), (Script.ENGLISH, " and 3 pears"),
    ]
    assert script_runs("距离3km") == [(Script.CHINESE, "距离3km")]
    assert script_runs("12:30") == [(Script.ENGLISH, "12:30")]
    assert script_runs("12:30。") == [(Script.CHINESE, "12:30。")]


LIMIT = TextLimit(40)


def test_sentences_are_split_after_normalising() -> None:
    spoken = asyncio.run(spoken_text("Dr. Smith paid $3.50. He left at 5 p.m. Then 2026-12-01 came.", TextLimit(100)))
    assert spoken.sentences == (
        "Doctor Smith paid three dollars and fifty cents.", "He left at five PM.",
        "Then December first, twenty twenty-six came.",
    )
    assert spoken.normalized == " ".join(spoken.sentences)


def test_normalize_false_sends_the_text_as_written() -> None:
    spoken = asyncio.run(spoken_text("Dr. Smith paid $3.50.", LIMIT, normalize=False))
    assert spoken.sentences == ("Dr. Smith paid $3.50.",)
    assert spoken.normalized is None


def test_the_length_limit_counts_the_text_as_sent() -> None:
    text = "$1,234,567.89 on 2026-12-01."  # 28 characters written, over 100 spoken
    assert len(normalize_text(text)) > LIMIT.max_chars
    assert asyncio.run(spoken_text(text, LIMIT)).normalized == normalize_text(text)
    with pytest.raises(InvalidInput, match="text is 41 characters; the limit is 40"):
        asyncio.run(spoken_text("x" * 41, LIMIT))
